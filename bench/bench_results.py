"""Results throughput and memory: one finished batch of N requests, in one run.

Starts the simulated gateway (its own process) serving one completed OpenAI batch of N chat
requests (~600-byte lines: N = 200,000 is a ~120 MB body), stores the batch with a sync that
skips results, then runs, each as a whole fresh process (imports included):

  batchlake     `batchlake results`: stream + parse + flatten + stage + price + load
  fetch+parse   httpx GET of the same body and orjson.loads of it whole (the baseline)
  fetch+stream  the same GET read in chunks through batchlake's streaming parser only

and prints result lines/s of the whole process, peak RSS, and the ratios.

    python bench/bench_results.py --requests 200000
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sync import RUSAGE, start_gateway

ROOT = Path(__file__).resolve().parent.parent

BATCHLAKE = RUSAGE + """
from batchlake.common.settings import Settings
from batchlake.pipeline import sync_results_only
t0 = time.perf_counter()
rep = sync_results_only(Settings(base_url=sys.argv[1], db_path=sys.argv[2],
                                 providers=('openai',)))
r = rep.results[0]
assert r.status == 'ok' and r.results_failed == 0, (r.error, r.warnings)
report(r.result_lines, time.perf_counter() - t0)
"""

FETCH_PARSE = RUSAGE + """
import httpx, orjson
t0 = time.perf_counter()
with httpx.Client(base_url=sys.argv[1], timeout=120) as c:
    body = orjson.loads(c.get('/v1/batches/' + sys.argv[3] + '/results',
                              params={'provider': 'openai'}).content)
report(len(body['results']), time.perf_counter() - t0)
"""

FETCH_STREAM = RUSAGE + """
import httpx
from batchlake.gateway.stream import ResultsBody, iter_results
t0 = time.perf_counter()
with httpx.Client(base_url=sys.argv[1], timeout=120) as c:
    with c.stream('GET', '/v1/batches/' + sys.argv[3] + '/results',
                  params={'provider': 'openai'}) as resp:
        n = sum(1 for _ in iter_results(resp.iter_bytes(1 << 18), ResultsBody()))
report(n, time.perf_counter() - t0)
"""


def run(name: str, code: str, args: list[str]) -> dict[str, float]:
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         cwd=ROOT, timeout=900)
    wall = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"{name} failed: {res.stderr[-2000:]}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    n = out["objects"]
    row = {"lines": n, "whole_per_s": n / wall, "core_per_s": n / out["core_s"],
           "rss_mb": out["rss_mb"], "wall_s": wall}
    print(f"{name:<13} {n:>9,} lines  whole {row['whole_per_s']:>9,.0f}/s  "
          f"core {row['core_per_s']:>9,.0f}/s  peak RSS {row['rss_mb']:>6.0f} MB  "
          f"({wall:.2f} s)", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=2, help="runs of each, alternating")
    args = ap.parse_args()
    proc, url = start_gateway(0, "openai", "--big-batch", str(args.requests))
    tmp = Path(tempfile.mkdtemp(prefix="batchlake-results-bench-"))
    bid = f"batch_big{args.requests}"
    try:
        seed = tmp / "seed.duckdb"
        res = subprocess.run([sys.executable, "-m", "batchlake", "sync", "--base-url", url,
                              "--providers", "openai", "--db", str(seed), "--quiet",
                              "--no-results"], cwd=ROOT, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        # the gateway renders the body once and keeps it: every run reads the same bytes
        size = len(httpx.get(f"{url}/v1/batches/{bid}/results", params={"provider": "openai"},
                             timeout=300).content)
        print(f"one finished batch of {args.requests:,} requests: a {size / 1e6:.0f} MB "
              "results body\n")
        rows: dict[str, list[dict[str, float]]] = {"batchlake": [], "fetch+parse": [],
                                                   "fetch+stream": []}
        for i in range(args.repeat):
            db = tmp / f"r{i}.duckdb"
            shutil.copy(seed, db)
            rows["batchlake"].append(run("batchlake", BATCHLAKE, [url, str(db)]))
            rows["fetch+parse"].append(run("fetch+parse", FETCH_PARSE, [url, "", bid]))
            rows["fetch+stream"].append(run("fetch+stream", FETCH_STREAM, [url, "", bid]))
        best = {k: max(v, key=lambda r: r["whole_per_s"]) for k, v in rows.items()}
        b = best["batchlake"]
        print(f"\nbatchlake (best of {args.repeat}): {b['whole_per_s']:,.0f} lines/s whole "
              f"process, {b['rss_mb']:.0f} MB peak")
        for peer in ("fetch+parse", "fetch+stream"):
            p = best[peer]
            print(f"  vs {peer:<12} {b['whole_per_s'] / p['whole_per_s']:.2f}x the speed, "
                  f"{b['rss_mb'] / p['rss_mb']:.2f}x the memory")
    finally:
        proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
