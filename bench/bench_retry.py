"""Retry's memory and speed on a large input file: one finished batch of N requests whose
input file is ~200 MB (N = 50,000 requests of ~4 KB, OpenAI's largest batch file: prompts
padded by 2,600 characters, some lines \\u-escaped as Python writes them).

Starts the simulated gateway (its own process) serving that batch (its results body
uncapped, a share of its requests failed or never answered), syncs it with its results, then
runs, each as a whole fresh process (imports included):

  batchlake retry   `batchlake.retry`: the input streamed to disk, joined line by line to the
                    stored failures, the failed requests written out
  fetch+load        the same input fetched whole with httpx and every line decoded into a
                    list (what a hand-written retry script does): the baseline

and prints the input's size, the requests written, wall time, peak RSS (the process's own
VmHWM) against the 300 MB target, and the ratios.

    python bench/bench_retry.py --requests 50000 --padding 2600
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
TARGET_MB = 300

RETRY = RUSAGE + """
import batchlake
t0 = time.perf_counter()
rep = batchlake.retry('openai', out=sys.argv[3], db=sys.argv[4], base_url=sys.argv[1])
report(rep.total, time.perf_counter() - t0)
"""

FETCH_LOAD = RUSAGE + """
import httpx, orjson
t0 = time.perf_counter()
with httpx.Client(base_url=sys.argv[1], timeout=600) as c:
    body = c.get('/v1/files/' + sys.argv[3] + '/content', params={'provider': 'openai'}).content
lines = [orjson.loads(ln) for ln in body.split(b'\\n') if ln.strip()]
report(len(lines), time.perf_counter() - t0)
"""


def run(name: str, code: str, args: list[str]) -> dict[str, float]:
    wall, out = run_child(name, code, args, timeout=1800)
    row = {"n": out["objects"], "rss_mb": out["rss_mb"], "wall_s": wall}
    print(f"{name:<16} {out['objects']:>9,} lines  {wall:>7.2f} s  peak RSS "
          f"{out['rss_mb']:>6.0f} MB", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=50_000)
    ap.add_argument("--padding", type=int, default=2600, help="characters more per prompt")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each, alternating")
    args = ap.parse_args()
    proc, url = start_gateway(0, "openai", "--big-batch", str(args.requests),
                              "--big-input-padding", str(args.padding))
    tmp = Path(tempfile.mkdtemp(prefix="batchlake-retry-bench-"))
    bid = f"batch_big{args.requests}"
    file_id = f"file-{bid[-10:]}"
    try:
        db = tmp / "lake.duckdb"
        res = subprocess.run([sys.executable, "-m", "batchlake", "sync", "--base-url", url,
                              "--providers", "openai", "--db", str(db), "--quiet",
                              "--results-budget", "0"], cwd=ROOT, capture_output=True,
                             text=True)
        assert res.returncode == 0, res.stderr
        with httpx.stream("GET", f"{url}/v1/files/{file_id}/content",
                          params={"provider": "openai"}, timeout=600) as r:
            size = int(r.headers["Content-Length"])
        print(f"\none finished batch of {args.requests:,} requests: a {size / 1e6:.0f} MB "
              f"input file\n")
        ours, theirs = [], []
        for i in range(args.repeat):
            ours.append(run("batchlake retry", RETRY, [url, "openai", str(tmp / f"out{i}"),
                                                       str(db)]))
            theirs.append(run("fetch+load", FETCH_LOAD, [url, "openai", file_id]))
        b = min(ours, key=lambda r: r["wall_s"])
        f = min(theirs, key=lambda r: r["wall_s"])
        print(f"\nbatchlake retry (best of {args.repeat}): {b['n']:,} requests written from a "
              f"{size / 1e6:.0f} MB input in {b['wall_s']:.1f} s, peak RSS {b['rss_mb']:.0f} MB "
              f"({'within' if b['rss_mb'] <= TARGET_MB else 'ABOVE'} the {TARGET_MB} MB target)")
        print(f"  vs fetch+load: {b['rss_mb'] / f['rss_mb']:.2f}x the memory "
              f"({f['rss_mb']:.0f} MB), {f['wall_s'] / b['wall_s']:.2f}x the speed")
    finally:
        proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
