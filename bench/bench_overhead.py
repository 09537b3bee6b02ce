"""What each way of running a sync adds to the sync core, in one run.

Starts the simulated gateway (own process) with N batches, then runs the same full sync into
an empty DuckDB file, each a fresh process, ``--repeat`` times:

  core        the sync core in Python (bench_sync's runner): fetch + flatten + load, timed
              inside the process after imports
  cli         ``batchlake sync`` with no Prefect API configured (direct mode), whole process
  prefect     ``batchlake sync`` as a flow run against a running ``prefect server`` on
              127.0.0.1 (started here, on a fresh PREFECT_HOME, unless --prefect-api gives
              one already running), whole process

and prints the median seconds and each mode's overhead over the core's median. The first
flow run after a server started here is reported apart: it pays the server's warm-up.

    python bench/bench_overhead.py --size 100000 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sync import BATCHLAKE, ROOT, free_port, run, start_gateway

SERVER_START_S = 180  # a fresh Prefect database takes ~20 s here; leave room on slow CI


def whole_seconds(args: list[str], env: dict[str, str]) -> float:
    """Wall time of one ``batchlake`` process; raises if it fails."""
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "batchlake", *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"batchlake {' '.join(args[:1])} failed: "
                         f"{(res.stderr or res.stdout).strip().splitlines()[-1:]}")
    return wall


def start_prefect(home: Path) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_UI_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING"}
    env.pop("PREFECT_API_URL", None)
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host",
                               "127.0.0.1", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + SERVER_START_S
    while True:
        try:
            if httpx.get(api + "/health", timeout=2).status_code == 200:
                return server, {**env, "PREFECT_API_URL": api}
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            raise SystemExit("prefect server did not start")
        time.sleep(0.2)  # polling a server we just started: no readiness signal to wait on


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--prefect-api", metavar="URL",
                    help="a running Prefect server's API (e.g. http://127.0.0.1:4200/api) to "
                         "use instead of starting one; its first run then pays no warm-up")
    args = ap.parse_args()
    gw, url = start_gateway(args.size, "openai")
    tmp = Path(tempfile.mkdtemp(prefix="batchlake-overhead-"))
    server = None
    try:
        sync_args = ["sync", "--base-url", url, "--providers", "openai", "--page-limit", "100",
                     "--quiet", "--no-results"]  # as the core (bench_sync's BATCHLAKE)
        direct_env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}

        def fresh_db(name: str, i: int) -> str:
            return str(tmp / f"{name}-{i}.duckdb")

        # BATCHLAKE (bench_sync's runner) takes the url, the providers and the file.
        run("warm-up", BATCHLAKE, [url, "openai", fresh_db("warm", 0)])  # renders the pages
        core = [r["objects"] / r["core_per_s"] for i in range(args.repeat)
                if (r := run("core", BATCHLAKE, [url, "openai", fresh_db("core", i)]))]
        cli = [whole_seconds([*sync_args, "--db", fresh_db("cli", i)], direct_env)
               for i in range(args.repeat)]
        if args.prefect_api:
            prefect_env = {**os.environ, "PREFECT_API_URL": args.prefect_api}
        else:
            server, prefect_env = start_prefect(tmp / "prefect-home")
        # a server started here: its first run pays its warm-up, reported apart
        first = (None if args.prefect_api else
                 whole_seconds([*sync_args, "--db", fresh_db("flow-first", 0)], prefect_env))
        flows = [whole_seconds([*sync_args, "--db", fresh_db("flow", i)], prefect_env)
                 for i in range(args.repeat)]
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        gw.terminate()
        gw.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    base = statistics.median(core)
    print(f"N = {args.size:,} batches, {os.cpu_count()} cores, pages of 100, "
          f"median of {args.repeat}")
    print(f"{'mode':34} {'seconds':>8} {'overhead':>9}")
    runs = ", ".join(f"{v:.2f}" for v in core)
    print(f"{'sync core (in process)':34} {base:8.2f} {'':>9}   runs: {runs}")
    for label, values in (("batchlake sync, direct", cli),
                          ("batchlake sync, Prefect flow run", flows)):
        med = statistics.median(values)
        runs = ", ".join(f"{v:.2f}" for v in values)
        print(f"{label:34} {med:8.2f} {med - base:+8.2f}s   runs: {runs}")
    if first is not None:
        print(f"{'  first flow run after server start':34} {first:8.2f} "
              f"{first - base:+8.2f}s")


if __name__ == "__main__":
    main()
