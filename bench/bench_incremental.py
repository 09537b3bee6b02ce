"""Incremental sync cost against a long history, in one run.

Starts the simulated gateway (own process) with N batches created over 100 days, then times
in this process:

  full         first sync into an empty DuckDB file
  re-sync      an incremental sync right after, nothing changed (idempotent re-run)
  incremental  after the clock moves on so that about 1% of batches are new or changed
  full again   --full-refresh over the same state, for comparison
  scheduled    ten 10-minute runs with the stuck batches (3% of the population run 4x
               long): requests per run with the polling backoff, and without it

and prints seconds, HTTP requests (counted by the gateway), rows written and ratios.

    python bench/bench_incremental.py --size 100000
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sync import start_gateway

from batchlake.common import Settings
from batchlake.pipeline import sync


def requests_so_far(url: str) -> int:
    stats = httpx.get(url + "/_sim/stats").json()["requests"]
    return sum(v for k, v in stats.items() if k.startswith(("list", "retrieve")))


def timed(label: str, url: str, settings: Settings, **kw: Any) -> dict[str, Any]:
    before = requests_so_far(url)
    t = time.perf_counter()
    rep = sync(settings, **kw)
    secs = time.perf_counter() - t
    r = rep.results[0]
    assert r.status == "ok", r.error
    return {"label": label, "seconds": secs, "requests": requests_so_far(url) - before,
            "fetched": r.fetched, "by_id": r.refetched, "inserted": r.counts.inserted,
            "updated": r.counts.updated, "snapshots": r.counts.snapshots}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--history-days", type=int, default=100)
    ap.add_argument("--advance-hours", type=float, default=12.0,
                    help="clock step before the incremental sync (sets the share changed)")
    ap.add_argument("--runs", type=int, default=10,
                    help="scheduled 10-minute runs of the stuck-batches case")
    args = ap.parse_args()
    proc, url = start_gateway(args.size, "openai", "--history-days", str(args.history_days),
                              "--future-share", "0.01")
    tmp = Path(tempfile.mkdtemp(prefix="batchlake-inc-"))
    try:
        httpx.get(url + "/v1/batches", params={"provider": "openai", "limit": 1})
        # batch objects only: the results stage has its own bench (bench_results.py)
        s = Settings(base_url=url, db_path=str(tmp / "inc.duckdb"), providers=("openai",),
                     results=False)
        rows = [timed("full", url, s)]
        rows.append(timed("re-sync", url, s))
        httpx.post(url + f"/_sim/advance?seconds={int(args.advance_hours * 3600)}")
        rows.append(timed("incremental", url, s))
        rows.append(timed("full again", url, s, full_refresh=True))
        scheduled = stuck_runs(url, tmp, s, args.runs)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    full = rows[0]
    changed = rows[2]["inserted"] + rows[2]["updated"]
    print(f"N = {args.size:,} batches over {args.history_days} days; clock +"
          f"{args.advance_hours:g}h before 'incremental': {changed:,} new or changed "
          f"({changed / args.size:.2%})")
    print(f"{'sync':<12}{'seconds':>9}{'requests':>10}{'fetched':>9}{'by id':>7}"
          f"{'new':>8}{'changed':>9}{'snapshots':>11}{'vs full':>9}")
    for r in rows:
        print(f"{r['label']:<12}{r['seconds']:>9.2f}{r['requests']:>10,}{r['fetched']:>9,}"
              f"{r['by_id']:>7,}{r['inserted']:>8,}{r['updated']:>9,}{r['snapshots']:>11,}"
              f"{r['seconds'] / full['seconds']:>9.1%}")
    print(f"\nscheduled runs every 10 minutes (the gateway's clock and the run's alike), "
          f"requests per run; the long-open batches are the stuck ones\n"
          f"{'run':>4}{'open':>7}  {'with backoff: requests, by id, deferred':<42}"
          f"{'every open batch every run: requests, by id'}")
    for i, (a, b) in enumerate(zip(*scheduled, strict=True), start=1):
        print(f"{i:>4}{a['open']:>7}  {a['requests']:>10,}{a['by_id']:>8,}{a['deferred']:>10,}"
              f"{'':<14}{b['requests']:>10,}{b['by_id']:>8,}")
    with_backoff = sum(r["requests"] for r in scheduled[0])
    without = sum(r["requests"] for r in scheduled[1])
    print(f"total: {with_backoff:,} requests with the backoff, {without:,} without "
          f"({with_backoff / max(without, 1):.0%})")


def stuck_runs(url: str, tmp: Path, s: Settings, runs: int
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``runs`` scheduled runs on two copies of the synced file: with the polling backoff
    (a 10-minute schedule) and with every open batch read every run."""
    from dataclasses import replace
    from datetime import UTC, datetime

    import duckdb

    base = tmp / "inc.duckdb"
    copies = {"backoff": tmp / "backoff.duckdb", "every": tmp / "every.duckdb"}
    for path in copies.values():
        shutil.copy(base, path)
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in copies}
    now = httpx.get(url + "/_sim/stats").json()["now"]
    for i in range(runs):
        httpx.post(url + "/_sim/advance?seconds=600")
        clock = datetime.fromtimestamp(now + 600 * (i + 1), UTC)
        for name, path in copies.items():
            con = duckdb.connect(str(path), read_only=True)
            n_open = con.execute("SELECT count(*) FROM batches WHERE NOT is_terminal"
                                 ).fetchall()[0][0]
            con.close()
            settings = replace(s, db_path=str(path),
                               poll_interval_s=600 if name == "backoff" else 1e-3)
            before = requests_so_far(url)
            rep = sync(settings, clock=clock)
            r = rep.results[0]
            out[name].append({"open": n_open, "requests": requests_so_far(url) - before,
                              "by_id": r.refetched, "deferred": r.deferred})
    return out["backoff"], out["every"]


if __name__ == "__main__":
    main()
