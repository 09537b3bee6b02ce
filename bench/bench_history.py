"""The first sync of a long history, results on, against the listing alone, in one run.

Starts the simulated gateway (its own process) with N wild batches over five providers and
``--history-days`` of history, its results route set by ``--route``:

  missing  results answer a router's plain 404 (a gateway without the route): the case of
           the issue, where every finished batch used to cost one request
  ok       small results bodies (``--lines`` per batch)

and runs, each as a whole fresh process into its own database:

  no-results   batchlake sync --no-results            (the listing alone: the baseline)
  sync         batchlake sync                         (the default: results within budget)
  drain        batchlake results, after that sync     (the backlog, no budget)

and prints wall, peak RSS (the process's own VmHWM) and the requests each made, by endpoint.

    python bench/bench_history.py --batches 100000 --route missing
    python bench/bench_history.py --batches 100000 --route ok
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sync import CLI, WILD_PROVIDERS, run_child, start_gateway


def stats(url: str) -> dict[str, int]:
    got = httpx.get(f"{url}/_sim/stats", timeout=30).json()["requests"]
    out: dict[str, int] = {}
    for key, n in got.items():
        endpoint = key.split(":", 1)[0]
        out[endpoint] = out.get(endpoint, 0) + int(n)
    return out


def run(name: str, url: str, args: list[str]) -> dict[str, Any]:
    before = stats(url)
    wall, out = run_child(name, CLI, [url, WILD_PROVIDERS, *args], timeout=1800)
    after = stats(url)
    asked = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    row = {"wall_s": wall, "rss_mb": out["rss_mb"], "requests": asked}
    reqs = ", ".join(f"{k} {v:,}" for k, v in sorted(asked.items()) if v)
    print(f"{name:<11} wall {wall:6.2f} s  peak RSS {out['rss_mb']:5.0f} MB  requests: {reqs}",
          flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=100_000)
    ap.add_argument("--route", choices=("missing", "ok"), default="missing")
    ap.add_argument("--lines", type=int, default=5, help="lines per results body (--route ok)")
    ap.add_argument("--history-days", type=float, default=120)
    ap.add_argument("--runs", type=int, default=1, help="runs of each, alternating")
    args = ap.parse_args()
    proc, url = start_gateway(args.batches, WILD_PROVIDERS, "--wild", "--history-days",
                              str(args.history_days), "--results-route", args.route,
                              "--results-max-lines", str(args.lines))
    tmp = Path(tempfile.mkdtemp(prefix="batchlake-history-bench-"))
    print(f"{args.batches:,} wild batches over five providers, {args.history_days:g} days of "
          f"history, results route {args.route}"
          + (f" ({args.lines} lines a body)" if args.route == "ok" else "") + "\n")
    rows: dict[str, list[dict[str, Any]]] = {"no-results": [], "sync": [], "drain": []}
    try:
        for i in range(args.runs):
            base = ["--db", str(tmp / f"n{i}.duckdb"), "--base-url", url, "--quiet",
                    "--providers", WILD_PROVIDERS]
            rows["no-results"].append(run("no-results", url, ["sync", *base, "--no-results"]))
            db = ["--db", str(tmp / f"s{i}.duckdb"), "--base-url", url,
                  "--providers", WILD_PROVIDERS]
            rows["sync"].append(run("sync", url, ["sync", *db, "--quiet"]))
            rows["drain"].append(run("drain", url, ["results", *db]))
        best = {k: min(v, key=lambda r: r["wall_s"]) for k, v in rows.items()}
        print(f"\nsync / no-results: {best['sync']['wall_s'] / best['no-results']['wall_s']:.2f}x "
              f"the wall, {best['sync']['rss_mb']:.0f} against "
              f"{best['no-results']['rss_mb']:.0f} MB peak; drain {best['drain']['wall_s']:.1f} "
              f"s, {best['drain']['rss_mb']:.0f} MB")
    finally:
        proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
