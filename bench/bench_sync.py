"""Throughput and memory of a full sync, against peers, in one run.

Starts the simulated gateway (its own process) with N objects (provider openai, pages of 100),
then runs, each as a whole fresh process (imports included):

  batchlake      the sync core: fetch + flatten + load into an empty DuckDB file
  dlt-parquet    dlt's rest_api source -> duckdb, loader_file_format="parquet" (the peer)
  fetch-httpx    fetching and JSON-parsing the pages only (httpx sync client)
  fetch-stdlib   fetching only (http.client), the ceiling

and prints objects/s of the whole process and of its core (the work after imports and
set-up, which is what the throughput target is about), peak RSS, and the ratios
batchlake/dlt and batchlake/fetch-only.

    python bench/bench_sync.py --sizes 10000,100000
    python bench/bench_sync.py --sizes 100000 --metadata-keys 12   # ~1 KB objects
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PAGE = 100

# Each runner prints one JSON line {"objects": n, "rss_mb": peak, "core_s": t}; the parent
# times the whole process, the runner its core (the work itself, after imports and set-up).
RUSAGE = ("import resource, json, sys, time\n"
          "def report(n, core_s):\n"
          "    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
          "    print(json.dumps({'objects': n, 'rss_mb': rss, 'core_s': core_s}))\n")

BATCHLAKE = RUSAGE + """
from batchlake.pipeline import sync
from batchlake.common.settings import Settings
t0 = time.perf_counter()
rep = sync(Settings(base_url=sys.argv[1], db_path=sys.argv[2], providers=('openai',),
                    page_limit=PAGE, results=False))  # batch objects: bench_results.py
core = time.perf_counter() - t0
r = rep.results[0]
assert r.status == 'ok', r.error
report(r.counts.inserted, core)
""".replace("PAGE", str(PAGE))

FETCH_HTTPX = RUSAGE + """
import httpx, orjson
n, after = 0, None
t0 = time.perf_counter()
with httpx.Client(base_url=sys.argv[1]) as c:
    while True:
        params = {'provider': 'openai', 'limit': PAGE}
        if after: params['after'] = after
        body = orjson.loads(c.get('/v1/batches', params=params).content)
        n += len(body['data'])
        if not body.get('has_more'): break
        after = body['last_id']
report(n, time.perf_counter() - t0)
""".replace("PAGE", str(PAGE))

FETCH_STDLIB = RUSAGE + """
import http.client, urllib.parse, re
u = urllib.parse.urlsplit(sys.argv[1])
conn = http.client.HTTPConnection(u.hostname, u.port)
n, after = 0, None
last = re.compile(rb'"last_id":"([^"]+)"')
t0 = time.perf_counter()
while True:
    q = 'provider=openai&limit=PAGE' + ('&after=' + urllib.parse.quote(after) if after else '')
    conn.request('GET', '/v1/batches?' + q)
    body = conn.getresponse().read()
    n += body.count(b'"request_counts"')
    if b'"has_more":true' not in body: break
    after = last.search(body).group(1).decode()
report(n, time.perf_counter() - t0)
""".replace("PAGE", str(PAGE))

DLT = RUSAGE + """
import dlt
from dlt.sources.rest_api import rest_api_source
source = rest_api_source({
    'client': {'base_url': sys.argv[1] + '/v1/',
               'paginator': {'type': 'cursor', 'cursor_path': 'last_id',
                             'cursor_param': 'after'}},
    'resources': [{'name': 'batches', 'endpoint': {
        'path': 'batches', 'params': {'provider': 'openai', 'limit': PAGE},
        'data_selector': 'data'}, 'primary_key': 'id', 'write_disposition': 'merge'}],
})
pipe = dlt.pipeline(pipeline_name='bench', destination=dlt.destinations.duckdb(sys.argv[2]),
                    dataset_name='bench', pipelines_dir=sys.argv[3])
fmt = sys.argv[4] if len(sys.argv) > 4 else 'parquet'
t0 = time.perf_counter()
info = pipe.run(source, loader_file_format=None if fmt == 'default' else fmt)
core = time.perf_counter() - t0
import duckdb
con = duckdb.connect(sys.argv[2])
n = con.execute('select count(*) from bench.batches').fetchall()[0][0]
report(n, core)
""".replace("PAGE", str(PAGE))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_gateway(n: int, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    """`batchlake gateway` in its own process (openai only), ready when this returns."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchlake", "gateway", "--port", str(port), "--batches", str(n),
         "--providers", "openai", *(extra or ("--future-share", "0"))],
        cwd=ROOT, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            httpx.get(url + "/health", timeout=1)
            return proc, url
        except httpx.TransportError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.1)


def run(name: str, code: str, args: list[str]) -> dict[str, float] | None:
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         cwd=ROOT)
    wall = time.perf_counter() - start
    if res.returncode != 0:
        print(f"  {name}: failed: {res.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    out = json.loads(res.stdout.strip().splitlines()[-1])
    return {"objects": out["objects"], "seconds": wall, "rss_mb": out["rss_mb"],
            "per_s": out["objects"] / wall, "core_per_s": out["objects"] / out["core_s"]}


def have_dlt() -> bool:
    return subprocess.run([sys.executable, "-c", "import dlt"], capture_output=True
                          ).returncode == 0


def mean_object_bytes(url: str) -> float:
    """Average size of a listed object as the gateway sends it (compact JSON)."""
    body = httpx.get(url + "/v1/batches", params={"provider": "openai", "limit": PAGE}).json()
    sizes = [len(json.dumps(o, separators=(",", ":"))) for o in body["data"]]
    return sum(sizes) / max(len(sizes), 1)


def bench(n: int, with_dlt: bool, dlt_default_max: int = 0, metadata_keys: int = 2
          ) -> tuple[float, dict[str, dict[str, float] | None]]:
    gw, url = start_gateway(n, "--future-share", "0", "--metadata-keys", str(metadata_keys))
    tmp = Path(tempfile.mkdtemp(prefix="batchlake-bench-"))
    try:
        run("warm-up", FETCH_HTTPX, [url])  # renders and caches every object once
        size = mean_object_bytes(url)
        results = {
            "fetch-stdlib": run("fetch-stdlib", FETCH_STDLIB, [url]),
            "fetch-httpx": run("fetch-httpx", FETCH_HTTPX, [url]),
            "batchlake": run("batchlake", BATCHLAKE, [url, str(tmp / "bl.duckdb")]),
        }
        if results["batchlake"]:
            results["batchlake"]["file_mb"] = (tmp / "bl.duckdb").stat().st_size / 2**20
        if with_dlt:
            results["dlt-parquet"] = run("dlt-parquet", DLT, [url, str(tmp / "dlt.duckdb"),
                                                              str(tmp / "dlt")])
            if n <= dlt_default_max:  # ~100x slower: only at small N
                results["dlt-default"] = run("dlt-default", DLT, [
                    url, str(tmp / "dltd.duckdb"), str(tmp / "dltd"), "default"])
        return size, results
    finally:
        gw.terminate()
        gw.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--no-dlt", action="store_true", help="skip the dlt peer")
    ap.add_argument("--dlt-default-max", type=int, default=10_000,
                    help="also run dlt's default loader for N up to this (it is slow)")
    ap.add_argument("--metadata-keys", type=int, default=2,
                    help="metadata keys per tagged batch: 2 (~600-byte objects) or 12 (~1 KB, "
                         "the issue's objects)")
    args = ap.parse_args()
    with_dlt = not args.no_dlt and have_dlt()
    if not with_dlt and not args.no_dlt:
        print("dlt not installed (pip install -r requirements-bench.lock): peer skipped")
    print(f"machine: {os.cpu_count()} cores; pages of {PAGE}; whole processes incl. imports")
    for n in (int(s) for s in args.sizes.split(",")):
        size, res = bench(n, with_dlt, args.dlt_default_max, args.metadata_keys)
        print(f"\nN = {n:,}, objects of {size:,.0f} bytes on average "
              f"({args.metadata_keys} metadata keys)")
        print(f"{'approach':<14}{'objects':>10}{'seconds':>10}{'objects/s':>12}"
              f"{'core obj/s':>12}{'peak RSS MB':>13}")
        for name, r in res.items():
            if r is None:
                print(f"{name:<14}{'failed':>10}")
                continue
            print(f"{name:<14}{r['objects']:>10,.0f}{r['seconds']:>10.2f}{r['per_s']:>12,.0f}"
                  f"{r['core_per_s']:>12,.0f}{r['rss_mb']:>13.0f}")
        bl = res.get("batchlake")
        if bl:
            print(f"batchlake DuckDB file: {bl['file_mb']:.0f} MB")
            for peer in ("dlt-parquet", "dlt-default", "fetch-httpx", "fetch-stdlib"):
                p = res.get(peer)
                if p:
                    print(f"batchlake / {peer}: {bl['per_s'] / p['per_s']:.2f}x throughput "
                          f"(core {bl['core_per_s'] / p['core_per_s']:.2f}x), "
                          f"{bl['rss_mb'] / p['rss_mb']:.2f}x memory")


if __name__ == "__main__":
    main()
