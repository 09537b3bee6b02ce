"""Throughput and memory of a full sync, against peers, in one run.

Starts the simulated gateway (its own process) with N objects. By default it serves the wild
mix (``--wild``: five providers in real traffic's shares, ~20% with error arrays, raw payloads
on half, OpenAI's explicit nulls in them, cache_debug, ~1 KB objects); ``--kind`` serves the
old, kinder openai-only population. Then it runs, each as a whole fresh process (imports
included), over every provider of the mix:

  batchlake      the sync: fetch + flatten + load into an empty DuckDB file
  dlt-parquet    dlt's rest_api source -> duckdb, loader_file_format="parquet" (the peer)
  fetch-httpx    fetching and JSON-parsing the pages only (httpx sync client)
  fetch-stdlib   fetching only (http.client), the ceiling

and prints objects/s of the whole process and of its core (the work after imports and
set-up), peak RSS, and the ratios of batchlake to each.

    python bench/bench_sync.py --sizes 100000
    python bench/bench_sync.py --sizes 100000,1000000 --dlt-max 100000   # memory at 1M
    python bench/bench_sync.py --kind --sizes 100000                     # openai only, kind
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
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
PAGE = 100
WILD_PROVIDERS = "openai,anthropic,gemini,bedrock,azure"

# Each runner prints one JSON line {"objects": n, "rss_mb": peak, "core_s": t}; the parent
# times the whole process, the runner its core (the work itself, after imports and set-up).
# argv: url, providers (comma-separated), then the runner's own.
# Peak RSS of the measured process alone: VmHWM (this process image's high-water mark). Linux
# carries ru_maxrss over fork and exec, so a child of a parent that once held a big body
# reports at least the parent's peak (every results run showed the bench's own 336 MB).
RUSAGE = ("import resource, json, sys, time\n"
          "PROVIDERS = sys.argv[2].split(',')\n"
          "def peak_mb():\n"
          "    try:\n"
          "        for ln in open('/proc/self/status'):\n"
          "            if ln.startswith('VmHWM:'):\n"
          "                return int(ln.split()[1]) / 1024\n"
          "    except OSError:\n"
          "        pass\n"
          "    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
          "def report(n, core_s):\n"
          "    print(json.dumps({'objects': n, 'rss_mb': peak_mb(), 'core_s': core_s}))\n")

# The real CLI in-process (argv[3:] its arguments), so that the runner reports its own peak
# RSS and the time of the command's work, after interpreter start and imports.
CLI = RUSAGE + """
from batchlake.cli import main
t0 = time.perf_counter()
sys.argv = ['batchlake', *sys.argv[3:]]
try:
    main()
except SystemExit as e:
    if e.code not in (0, None):
        raise
report(0, time.perf_counter() - t0)
"""

BATCHLAKE = RUSAGE + """
from batchlake.pipeline import sync
from batchlake.common.settings import Settings
t0 = time.perf_counter()
rep = sync(Settings(base_url=sys.argv[1], db_path=sys.argv[3], providers=tuple(PROVIDERS),
                    page_limit=PAGE, results=False))  # batch objects: bench_results.py
core = time.perf_counter() - t0
for r in rep.results:
    assert r.status == 'ok', r.error
report(sum(r.counts.inserted + r.counts.rejected for r in rep.results), core)
""".replace("PAGE", str(PAGE))

# Bifrost pages by next_cursor where it sends one (Bedrock has no last_id), else last_id.
FETCH_HTTPX = RUSAGE + """
import httpx, orjson
n = 0
t0 = time.perf_counter()
with httpx.Client(base_url=sys.argv[1]) as c:
    for provider in PROVIDERS:
        after = None
        while True:
            params = {'provider': provider, 'limit': PAGE}
            if after: params['after'] = after
            body = orjson.loads(c.get('/v1/batches', params=params).content)
            n += len(body['data'])
            if not body.get('has_more'): break
            after = body.get('next_cursor') or body['last_id']
report(n, time.perf_counter() - t0)
""".replace("PAGE", str(PAGE))

FETCH_STDLIB = RUSAGE + """
import http.client, urllib.parse, re
u = urllib.parse.urlsplit(sys.argv[1])
conn = http.client.HTTPConnection(u.hostname, u.port)
n = 0
cursor = re.compile(rb'"next_cursor":"([^"]+)"')
last = re.compile(rb'"last_id":"([^"]+)"')
t0 = time.perf_counter()
for provider in PROVIDERS:
    after = None
    while True:
        q = f'provider={provider}&limit=PAGE' + (
            '&after=' + urllib.parse.quote(after) if after else '')
        conn.request('GET', '/v1/batches?' + q)
        body = conn.getresponse().read()
        # chunk_index: once in each object's extra_fields (raw payloads have none), once
        # in the page's own
        n += body.count(b'"chunk_index"') - 1
        if b'"has_more":true' not in body: break
        after = (cursor.search(body) or last.search(body)).group(1).decode()
report(n, time.perf_counter() - t0)
""".replace("PAGE", str(PAGE))

# One resource per provider, merged on id, as a dlt user would write it.
DLT = RUSAGE + """
import dlt
from dlt.sources.rest_api import rest_api_source
def endpoint_for(provider):
    path = 'next_cursor' if provider in ('bedrock', 'gemini') else 'last_id'
    return {'name': 'batches_' + provider, 'endpoint': {
        'path': 'batches', 'params': {'provider': provider, 'limit': PAGE},
        'paginator': {'type': 'cursor', 'cursor_path': path, 'cursor_param': 'after'},
        'data_selector': 'data'}, 'primary_key': 'id', 'write_disposition': 'merge'}
source = rest_api_source({'client': {'base_url': sys.argv[1] + '/v1/'},
                          'resources': [endpoint_for(p) for p in PROVIDERS]})
pipe = dlt.pipeline(pipeline_name='bench', destination=dlt.destinations.duckdb(sys.argv[3]),
                    dataset_name='bench', pipelines_dir=sys.argv[4])
fmt = sys.argv[5] if len(sys.argv) > 5 else 'parquet'
t0 = time.perf_counter()
info = pipe.run(source, loader_file_format=None if fmt == 'default' else fmt)
core = time.perf_counter() - t0
import duckdb
con = duckdb.connect(sys.argv[3])
n = sum(con.execute(f'select count(*) from bench.batches_{p}').fetchall()[0][0]
        for p in PROVIDERS)
report(n, core)
""".replace("PAGE", str(PAGE))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_gateway(n: int, providers: str, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    """`batchlake gateway` in its own process, ready when this returns."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchlake", "gateway", "--port", str(port), "--batches", str(n),
         "--providers", providers, "--future-share", "0", *extra],
        cwd=ROOT, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600  # 1M plans take a while to draw
    while True:
        try:
            httpx.get(url + "/health", timeout=1)
            return proc, url
        except httpx.TransportError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.1)


class ChildFailed(SystemExit):
    """A bench's child process failed; uncaught, it ends the bench with the child's output."""

    def __init__(self, name: str, res: subprocess.CompletedProcess[str]) -> None:
        super().__init__(f"{name} failed ({res.returncode}): {res.stderr[-2000:]}"
                         f"{res.stdout[-3000:]}")
        self.stderr = res.stderr


def run_child(name: str, code: str, args: list[str], env: dict[str, str] | None = None,
              timeout: float | None = None) -> tuple[float, dict[str, Any]]:
    """``code`` (a RUSAGE script) in a fresh interpreter with ``args``: its wall seconds and
    what its last line reported (objects, rss_mb, core_s). Raises ChildFailed."""
    start = time.perf_counter()
    # `python -c` puts the working directory first on sys.path: a baseline runs in its own
    # tree so that `import batchlake` finds that version, not this checkout.
    cwd = env["PYTHONPATH"] if env and "PYTHONPATH" in env else ROOT
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         cwd=cwd, env=env, timeout=timeout)
    wall = time.perf_counter() - start
    if res.returncode != 0:
        raise ChildFailed(name, res)
    return wall, json.loads(res.stdout.strip().splitlines()[-1])


def run(name: str, code: str, args: list[str], env: dict[str, str] | None = None
        ) -> dict[str, float] | None:
    try:
        wall, out = run_child(name, code, args, env)
    except ChildFailed as e:
        print(f"  {name}: failed: {e.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return {"objects": out["objects"], "seconds": wall, "rss_mb": out["rss_mb"],
            "per_s": out["objects"] / wall, "core_per_s": out["objects"] / out["core_s"]}


def best_of(runs: list[dict[str, float] | None]) -> dict[str, float] | None:
    """The median run by wall time (of those that finished), with the range kept."""
    done = sorted((r for r in runs if r), key=lambda r: r["seconds"])
    if not done:
        return None
    mid = dict(done[len(done) // 2])
    mid["min_s"], mid["max_s"] = done[0]["seconds"], done[-1]["seconds"]
    return mid


def have_dlt() -> bool:
    return subprocess.run([sys.executable, "-c", "import dlt"], capture_output=True
                          ).returncode == 0


def baseline_env(ref: str, into: Path) -> dict[str, str]:
    """An environment whose `import batchlake` is the code of git ``ref`` (a tree of links
    laid out as the installed package, first on PYTHONPATH): the version to beat, timed in
    the same run as this one."""
    src, tree = into / "src", into / "tree" / "batchlake"
    src.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    tree.mkdir(parents=True)
    for f in (src / "batchlake").iterdir():
        (tree / f.name).symlink_to(f)
    for layer in ("common", "gateway", "transforms", "warehouse", "sql", "flows", "simulator"):
        # a ref from before the batchlake/<layer> links got a link from the loop above
        if (src / layer).is_dir() and not (tree / layer).exists():
            (tree / layer).symlink_to(src / layer)
    env = {**os.environ, "PYTHONPATH": str(tree.parent)}
    check = subprocess.run([sys.executable, "-c", "import batchlake.pipeline as p; "
                            "print(p.__file__)"], env=env, cwd=tree.parent,
                           capture_output=True, text=True, check=True).stdout
    assert check.startswith(str(into)), f"baseline imports {check.strip()}, not {ref}"
    return env


def mean_object_bytes(url: str, providers: list[str]) -> float:
    """Average size of a listed object as the gateway sends it (compact JSON)."""
    sizes = []
    for p in providers:
        body = httpx.get(url + "/v1/batches", params={"provider": p, "limit": PAGE}).json()
        sizes += [len(json.dumps(o, separators=(",", ":"))) for o in body["data"]]
    return sum(sizes) / max(len(sizes), 1)


def bench(n: int, args: argparse.Namespace, with_dlt: bool
          ) -> tuple[float, dict[str, dict[str, float] | None]]:
    mix = ["--metadata-keys", str(args.metadata_keys)] + ([] if args.kind else ["--wild"])
    gw, url = start_gateway(n, args.providers, *mix)
    tmp = Path(tempfile.mkdtemp(prefix="batchlake-bench-"))
    provs = [url, args.providers]
    try:
        run("warm-up", FETCH_HTTPX, provs)  # renders and caches every object once
        size = mean_object_bytes(url, args.providers.split(","))
        results: dict[str, dict[str, float] | None] = {
            "fetch-stdlib": run("fetch-stdlib", FETCH_STDLIB, provs),
            "fetch-httpx": run("fetch-httpx", FETCH_HTTPX, provs),
        }
        base_env = baseline_env(args.baseline, tmp / "baseline") if args.baseline else None
        runs: dict[str, list[dict[str, float] | None]] = {}
        for k in range(args.runs):  # alternate the contenders: drift hits them alike
            db = tmp / f"bl{k}.duckdb"
            runs.setdefault("batchlake", []).append(run("batchlake", BATCHLAKE, [*provs, str(db)]))
            if runs["batchlake"][-1]:
                runs["batchlake"][-1]["file_mb"] = db.stat().st_size / 2**20
            db.unlink(missing_ok=True)
            if base_env is not None:
                bdb = tmp / f"base{k}.duckdb"
                runs.setdefault(f"baseline {args.baseline}", []).append(
                    run("baseline", BATCHLAKE, [*provs, str(bdb)], env=base_env))
                bdb.unlink(missing_ok=True)
            if with_dlt and n <= args.dlt_max:
                runs.setdefault("dlt-parquet", []).append(run("dlt-parquet", DLT, [
                    *provs, str(tmp / f"dlt{k}.duckdb"), str(tmp / f"dlt{k}")]))
                shutil.rmtree(tmp / f"dlt{k}", ignore_errors=True)
                (tmp / f"dlt{k}.duckdb").unlink(missing_ok=True)
        results.update({name: best_of(rs) for name, rs in runs.items()})
        if with_dlt and n <= args.dlt_default_max:  # ~100x slower: only at small N
            results["dlt-default"] = run("dlt-default", DLT, [
                *provs, str(tmp / "dltd.duckdb"), str(tmp / "dltd"), "default"])
        return size, results
    finally:
        gw.terminate()
        gw.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000")
    ap.add_argument("--kind", action="store_true",
                    help="serve the simulator's kind population (no --wild), openai only")
    ap.add_argument("--providers", default=None,
                    help=f"providers to serve and sync (default: {WILD_PROVIDERS}; "
                         "with --kind: openai)")
    ap.add_argument("--metadata-keys", type=int, default=None,
                    help="metadata keys per tagged batch (default 8: ~1 KB wild objects; "
                         "with --kind 2)")
    ap.add_argument("--runs", type=int, default=1,
                    help="runs of batchlake (and dlt, baseline), alternated; the median shown")
    ap.add_argument("--baseline", metavar="GIT_REF", default=None,
                    help="also time batchlake as of this commit, in the same run")
    ap.add_argument("--no-dlt", action="store_true", help="skip the dlt peer")
    ap.add_argument("--dlt-max", type=int, default=200_000,
                    help="run dlt-parquet for N up to this (1M takes it minutes)")
    ap.add_argument("--dlt-default-max", type=int, default=10_000,
                    help="also run dlt's default loader for N up to this (it is slow)")
    args = ap.parse_args()
    args.providers = args.providers or ("openai" if args.kind else WILD_PROVIDERS)
    if args.metadata_keys is None:
        args.metadata_keys = 2 if args.kind else 8
    with_dlt = not args.no_dlt and have_dlt()
    if not with_dlt and not args.no_dlt:
        print("dlt not installed (pip install -r requirements-bench.lock): peer skipped")
    print(f"machine: {os.cpu_count()} cores; pages of {PAGE}; whole processes incl. imports; "
          f"{'kind' if args.kind else 'wild'} mix of {args.providers}")
    rss_at: dict[int, float] = {}
    for n in (int(s) for s in args.sizes.split(",")):
        size, res = bench(n, args, with_dlt)
        print(f"\nN = {n:,}, objects of {size:,.0f} bytes on average "
              f"({args.metadata_keys} metadata keys)")
        print(f"{'approach':<20}{'objects':>10}{'seconds':>10}{'(min-max)':>14}{'objects/s':>12}"
              f"{'core obj/s':>12}{'peak RSS MB':>13}")
        for name, r in res.items():
            if r is None:
                print(f"{name:<20}{'failed':>10}")
                continue
            spread = (f"{r['min_s']:.2f}-{r['max_s']:.2f}" if "min_s" in r else "")
            print(f"{name:<20}{r['objects']:>10,.0f}{r['seconds']:>10.2f}{spread:>14}"
                  f"{r['per_s']:>12,.0f}{r['core_per_s']:>12,.0f}{r['rss_mb']:>13.0f}")
        bl = res.get("batchlake")
        if bl:
            rss_at[n] = bl["rss_mb"]
            print(f"batchlake DuckDB file: {bl['file_mb']:.0f} MB")
            for peer, p in res.items():
                if p and peer != "batchlake":
                    print(f"batchlake / {peer}: {bl['per_s'] / p['per_s']:.2f}x throughput "
                          f"(core {bl['core_per_s'] / p['core_per_s']:.2f}x), "
                          f"{bl['rss_mb'] / p['rss_mb']:.2f}x memory")
    if len(rss_at) > 1:
        lo, hi = min(rss_at), max(rss_at)
        print(f"\nbatchlake peak RSS at {hi:,} vs {lo:,} objects: "
              f"{rss_at[hi] / rss_at[lo] - 1:+.0%}")


if __name__ == "__main__":
    main()
