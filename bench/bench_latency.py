"""Against a gateway as slow as a real one: the listing against its floor, and how fast the
results drain, without a cap and under a cap of requests in flight, in one run.

Simulated gateways (each its own process, started afresh for each run, so that its counts
are the run's) serve wild batches over five providers, answering as Bifrost does from afar
(``--latency list=300ms,retrieve=200ms,results=600ms``: it downloads each provider's file
before it answers); for the capped runs they also refuse more than ``--cap`` results
requests at once (429, ``Retry-After: 1``). Each run is a whole fresh process:

  listing       batchlake sync --no-results     (``--listing-batches``, against its floor:
                                                 the largest provider's pages x 300 ms, one
                                                 page at a time)
  drain         batchlake results               (every finished batch of ``--batches``,
                                                 after a listing of them)
  drain, cap    batchlake results               (the same, against the capped gateway)
  sync          batchlake sync                  (listing and results at once, the default
                                                 60 s budget, into a fresh database)
  …, REF        the same as of git REF          (--baseline: the code to beat)

and prints wall, batches settled per second (of the command's own work, after interpreter
start and imports), the share of results requests answered 429, the most results requests
the gateway had in flight, peak RSS (the process's own VmHWM), and the ratios to the targets
(a drain >= 40 batches/s within 300 MB; under the cap >= 12 batches/s with <= 10% 429s).

    python bench/bench_latency.py --batches 4000
    python bench/bench_latency.py --batches 4000 --baseline 14033c6
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import duckdb
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sync import CLI, WILD_PROVIDERS, baseline_env, run_child, start_gateway

from batchlake.simulator import parse_route_values

LATENCY = "list=300ms,retrieve=200ms,results=600ms"



def stats(url: str) -> dict[str, Any]:
    got = httpx.get(f"{url}/_sim/stats", timeout=30).json()
    by_route: dict[str, int] = {}
    by_list: dict[str, int] = {}
    for key, n in got["requests"].items():
        route, provider = key.split(":", 1)
        by_route[route] = by_route.get(route, 0) + int(n)
        if route == "list":
            by_list[provider] = int(n)
    return {"requests": by_route, "list_pages": by_list,
            "throttled": int(got.get("throttled", {}).get("results", 0)),
            "peak": int(got.get("peak_inflight", {}).get("results", 0))}


def settled(db: Path) -> tuple[int, int]:
    """(finished batches with output, of them settled: loaded, unavailable or retry)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        row = con.execute(
            "SELECT count(*), count(s.state) FROM batches b LEFT JOIN batch_results_state s "
            "USING (provider, batch_id) WHERE b.is_terminal AND b.status_norm IN "
            "('completed', 'expired', 'cancelled')").fetchone()
    finally:
        con.close()
    assert row is not None
    return int(row[0]), int(row[1])


def run(name: str, url: str, args: list[str], db: Path,
        env: dict[str, str] | None = None) -> dict[str, Any]:
    """One whole process of the CLI; what it did, by the gateway's counts and the database."""
    before = stats(url)
    _, settled_before = settled(db) if db.exists() else (0, 0)
    wall, out = run_child(name, CLI, [url, WILD_PROVIDERS, *args], env, timeout=3600)
    after = stats(url)
    asked = {k: v - before["requests"].get(k, 0) for k, v in after["requests"].items()}
    pages = {p: n - before["list_pages"].get(p, 0) for p, n in after["list_pages"].items()}
    finished, now_settled = settled(db)
    throttled = after["throttled"] - before["throttled"]
    results = asked.get("results", 0)
    return {"name": name, "wall_s": wall, "core_s": out["core_s"], "rss_mb": out["rss_mb"],
            "finished": finished, "settled": now_settled - settled_before,
            "left": finished - now_settled, "results": results, "throttled": throttled,
            "peak": after["peak"], "pages": pages}


def show(r: dict[str, Any]) -> None:
    rate = r["settled"] / r["core_s"] if r["core_s"] else 0.0
    share = r["throttled"] / r["results"] if r["results"] else 0.0
    r["rate"], r["share"] = rate, share
    print(f"{r['name']:<22} wall {r['wall_s']:6.1f} s  settled {r['settled']:6,} "
          f"({rate:5.1f}/s)  left {r['left']:5,}  429s {share:6.1%}  peak in flight "
          f"{r['peak']:3}  peak RSS {r['rss_mb']:4.0f} MB", flush=True)


def drain(name: str, n: int, population: tuple[str, ...], tmp: Path,
          env: dict[str, str] | None = None) -> dict[str, Any]:
    """``batchlake results`` of every finished batch, on its own gateway (its stats are the
    run's alone) and a database that gateway's listing filled first."""
    proc, url = start_gateway(n, WILD_PROVIDERS, *population)
    try:
        db = tmp / f"{len(list(tmp.glob('*.duckdb')))}.duckdb"
        run(f"{name}: listing", url, ["sync", "--db", str(db), "--base-url", url,
                                      "--no-results", "--quiet", "--providers",
                                      WILD_PROVIDERS], db, env)
        row = run(name, url, ["results", "--db", str(db), "--base-url", url, "--providers",
                              WILD_PROVIDERS], db, env)
    finally:
        proc.kill()
    show(row)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=4000, help="the drains' population")
    ap.add_argument("--listing-batches", type=int, default=20000)
    ap.add_argument("--cap", type=int, default=12, help="results requests in flight at most")
    ap.add_argument("--lines", type=int, default=5, help="lines per results body")
    ap.add_argument("--no-sync", action="store_true", help="skip the sync with results")
    ap.add_argument("--baseline", metavar="GIT_REF", default=None,
                    help="also list and drain with batchlake as of this git ref")
    ap.add_argument("--latency", default=LATENCY,
                    help="the gateway's answer times (the targets assume the default; the "
                         "tests' toy run answers faster)")
    args = ap.parse_args()
    # the listing's floor per page (the simulator's own parser of --latency)
    list_s = parse_route_values(args.latency, "--latency", "duration").get("list", 0.0)
    population = ("--wild", "--history-days", "30", "--results-max-lines", str(args.lines),
                  "--latency", args.latency)
    capped = (*population, "--max-inflight", f"results={args.cap}", "--retry-after", "1")
    tmp = Path(tempfile.mkdtemp(prefix="batchlake-latency-bench-"))
    env = baseline_env(args.baseline, tmp / "baseline") if args.baseline else None
    print(f"wild batches over five providers, {args.lines} lines a results body; the gateway "
          f"answers {args.latency.replace(',', ', ')}; listing {args.listing_batches:,} batches, "
          f"drains {args.batches:,}\n")
    try:
        listings = [("listing", None)] + ([(f"listing, {args.baseline}", env)] if env else [])
        lists = {}
        for name, run_env in listings:
            proc, url = start_gateway(args.listing_batches, WILD_PROVIDERS, *population)
            try:
                db = tmp / f"{name.replace(', ', '-')}.duckdb"
                lists[name] = run(name, url, ["sync", "--db", str(db), "--base-url", url,
                                              "--no-results", "--quiet", "--providers",
                                              WILD_PROVIDERS], db, run_env)
            finally:
                proc.kill()
            show(lists[name])
        listing = lists["listing"]
        floor = max(listing["pages"].values()) * list_s
        rows = {"drain": drain("drain", args.batches, population, tmp)}
        rows["cap"] = drain(f"drain, cap {args.cap}", args.batches, capped, tmp)
        if env:
            rows["old"] = drain(f"drain, {args.baseline}", args.batches, population, tmp, env)
            drain(f"drain, cap, {args.baseline}", args.batches, capped, tmp, env)
        if not args.no_sync:
            proc, url = start_gateway(args.batches, WILD_PROVIDERS, *population)
            try:
                db = tmp / "sync.duckdb"
                show(run("sync (both at once)", url, [
                    "sync", "--db", str(db), "--base-url", url, "--quiet", "--providers",
                    WILD_PROVIDERS], db))
            finally:
                proc.kill()
        free, cap = rows["drain"], rows["cap"]
        print(f"\nlisting: {listing['wall_s']:.1f} s ({listing['core_s']:.1f} s after "
              f"start-up) against a floor of {floor:.1f} s ({max(listing['pages'].values())} "
              f"pages x {list_s * 1000:.0f} ms): {listing['wall_s'] / floor:.2f}x the floor")
        print(f"drain: {free['rate']:.1f} batches/s, {free['rate'] / 40:.2f}x the 40/s "
              f"target; peak RSS {free['rss_mb']:.0f} MB, "
              f"{free['rss_mb'] / 300:.2f}x the 300 MB bound")
        print(f"drain under a cap of {args.cap}: {cap['rate']:.1f} batches/s, "
              f"{cap['rate'] / 12:.2f}x the 12/s target; {cap['share']:.1%} of results "
              f"requests answered 429 (bound 10%); {cap['left']} finished batches left")
        if env:
            old = rows["old"]
            print(f"drain against {args.baseline}: {free['rate'] / old['rate']:.2f}x "
                  f"({old['rate']:.1f} batches/s)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
