"""Results throughput and memory: one finished batch of N requests, in one run.

Starts the simulated gateway (its own process) serving one completed OpenAI batch of N chat
requests (~600-byte lines: N = 200,000 is a ~120 MB body), stores the batch with a sync that
skips results, then runs, each as a whole fresh process (imports included):

  batchlake     `batchlake results`: stream + parse + flatten + stage + price + load
  fetch+parse   httpx GET of the same body and orjson.loads of it whole (the baseline)
  fetch+stream  the same GET read in chunks through batchlake's streaming parser only
  fetch+ijson   the same GET read through ijson's C backend (yajl2_c), when installed
                (`make bench` installs it): the maintained incremental parser to beat

and prints result lines/s of the whole process, peak RSS, and the ratios, for each way of
writing the body (``--encodings``): go (Bifrost's encoder: <, >, & escaped, a final newline),
raw UTF-8, ascii (every non-ASCII character as \\uXXXX) and indented.

    python bench/bench_results.py --requests 200000
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sync import RUSAGE, run_child, start_gateway

ROOT = Path(__file__).resolve().parent.parent

BATCHLAKE = RUSAGE + """
from batchlake.common.settings import Settings
from batchlake.pipeline import read_stored_results
t0 = time.perf_counter()
rep = read_stored_results(Settings(base_url=sys.argv[1], db_path=sys.argv[2],
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


FETCH_IJSON = RUSAGE + """
import httpx, ijson
t0 = time.perf_counter()
with httpx.Client(base_url=sys.argv[1], timeout=120) as c:
    with c.stream('GET', '/v1/batches/' + sys.argv[3] + '/results',
                  params={'provider': 'openai'}) as resp:
        class Body:  # ijson reads a file: at most n bytes a read
            def __init__(self): self.it, self.left = resp.iter_bytes(1 << 18), b''
            def read(self, n):
                if not self.left: self.left = next(self.it, b'')
                out, self.left = self.left[:n], self.left[n:]
                return out
        n = sum(1 for _ in ijson.items(Body(), 'results.item', use_float=True,
                                       buf_size=1 << 18))
report(n, time.perf_counter() - t0)
"""


def have_ijson() -> bool:
    return subprocess.run([sys.executable, "-c", "import ijson"], capture_output=True
                          ).returncode == 0


def run(name: str, code: str, args: list[str]) -> dict[str, float]:
    wall, out = run_child(name, code, args, timeout=900)
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
    ap.add_argument("--encodings", default="go,raw,ascii,indented",
                    help="how the gateway writes the body (comma-separated)")
    args = ap.parse_args()
    summary = []
    for encoding in args.encodings.split(","):
        summary.append((encoding, bench_one(args.requests, args.repeat, encoding)))
    print("\nbatchlake, best of each encoding (whole process):")
    for encoding, b in summary:
        print(f"  {encoding:<9} {b['whole_per_s']:>9,.0f} lines/s  {b['rss_mb']:>5.0f} MB peak")


def bench_one(requests: int, repeat: int, encoding: str) -> dict[str, float]:
    proc, url = start_gateway(0, "openai", "--big-batch", str(requests),
                              "--results-encoding", encoding)
    tmp = Path(tempfile.mkdtemp(prefix="batchlake-results-bench-"))
    bid = f"batch_big{requests}"
    try:
        seed = tmp / "seed.duckdb"
        res = subprocess.run([sys.executable, "-m", "batchlake", "sync", "--base-url", url,
                              "--providers", "openai", "--db", str(seed), "--quiet",
                              "--no-results"], cwd=ROOT, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        # the gateway renders the body once and keeps it: every run reads the same bytes
        raw = httpx.get(f"{url}/v1/batches/{bid}/results", params={"provider": "openai"},
                        timeout=300).content
        size, escapes = len(raw), raw.count(b"\\u")
        # dropped before the runs: a child process starts with its parent's peak RSS (Linux
        # keeps ru_maxrss across fork and exec), so a body held here would show in every run
        del raw
        print(f"\n[{encoding}] one finished batch of {requests:,} requests: a "
              f"{size / 1e6:.0f} MB results body, {escapes:,} \\u escapes\n")
        peers = {"batchlake": BATCHLAKE, "fetch+parse": FETCH_PARSE,
                 "fetch+stream": FETCH_STREAM}
        if have_ijson():
            peers["fetch+ijson"] = FETCH_IJSON
        rows: dict[str, list[dict[str, float]]] = {k: [] for k in peers}
        for i in range(repeat):
            db = tmp / f"r{i}.duckdb"
            shutil.copy(seed, db)
            rows["batchlake"].append(run("batchlake", BATCHLAKE, [url, str(db)]))
            for peer, code in peers.items():
                if peer != "batchlake":
                    rows[peer].append(run(peer, code, [url, "", bid]))
        best = {k: max(v, key=lambda r: r["whole_per_s"]) for k, v in rows.items()}
        b = best["batchlake"]
        print(f"batchlake (best of {repeat}): {b['whole_per_s']:,.0f} lines/s whole "
              f"process, {b['rss_mb']:.0f} MB peak")
        for peer in best:
            if peer == "batchlake":
                continue
            p = best[peer]
            print(f"  vs {peer:<12} {b['whole_per_s'] / p['whole_per_s']:.2f}x the speed, "
                  f"{b['rss_mb'] / p['rss_mb']:.2f}x the memory")
        if "fetch+ijson" in best:
            ours, theirs = best["fetch+stream"], best["fetch+ijson"]
            print(f"  parser alone: batchlake's stream {ours['whole_per_s']:,.0f} lines/s, "
                  f"ijson {theirs['whole_per_s']:,.0f} lines/s "
                  f"({ours['whole_per_s'] / theirs['whole_per_s']:.2f}x)")
        return b
    finally:
        proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
