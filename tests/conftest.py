"""Shared fixtures: a real simulated gateway on 127.0.0.1, real DuckDB files, the real CLI."""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Prefect reads these at import: keep its home, logs and telemetry inside the test run.
_PREFECT_HOME = tempfile.mkdtemp(prefix="batchlake-prefect-")
atexit.register(shutil.rmtree, _PREFECT_HOME, ignore_errors=True)  # each worker made one
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
os.environ.pop("PREFECT_API_URL", None)
for var in [v for v in os.environ if v.startswith(("BIFROST_", "BATCHLAKE_"))]:
    os.environ.pop(var, None)  # the tests set what they need; a developer's own stay out

import duckdb  # noqa: E402
import pytest  # noqa: E402

from batchlake.common import Settings  # noqa: E402
from batchlake.simulator import SimGateway  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# Tests run syncs back to back while the simulated gateway's clock jumps hours: a schedule
# interval of a millisecond keeps the polling backoff out of their way (tests/test_planner.py
# sets its own and runs on the gateway's clock).
FAST_RETRY = {"backoff_base_s": 0.01, "backoff_max_s": 0.2, "timeout_s": 2.0,
              "poll_interval_s": 0.001}
# The simulated gateway answers from this very process: its threads and the readers' share
# one GIL, so a window past 4 adds thread switches, not speed (a first sync of 300 batches:
# 2.7 s of CPU at the default window, 1.8 s at 4). The window's own tests set theirs.
IN_PROCESS_WINDOW = {"concurrency": 4, "max_inflight": 4}


@pytest.fixture
def gateway() -> Iterator[SimGateway]:
    """A small population (300 batches) on a real HTTP server."""
    gw = SimGateway(300, seed=11)
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def make_gateway() -> Iterator[Any]:
    started: list[SimGateway] = []

    def make(n: int = 300, **kw: Any) -> SimGateway:
        gw = SimGateway(n, **kw)
        gw.start()
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.stop()


@pytest.fixture(scope="module")
def openai_lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """An OpenAI gateway of 60 batches synced once for a module (tests/retry_fixtures.py)."""
    from tests.retry_fixtures import synced_lake

    yield from synced_lake(tmp_path_factory)


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "lake.duckdb")


def settings_for(gw: SimGateway, db: str, **kw: Any) -> Settings:
    values: dict[str, Any] = {"base_url": gw.base_url, "db_path": db,
                              "providers": gw.providers, **FAST_RETRY, **IN_PROCESS_WINDOW}
    values.update(kw)
    return Settings(**values)


_READER = duckdb.connect()  # one in-memory DuckDB that the tests' reads attach files to
_READER_LOCK = threading.Lock()
_READS = itertools.count()


@contextlib.contextmanager
def read_only(db: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to ``db``, closed (and the file released) after the block.

    The file is attached to one in-memory DuckDB for the session: a new DuckDB instance (what
    ``duckdb.connect(path)`` makes) costs ~25 ms of CPU to register its functions, an ATTACH
    ~4 ms, and the tests read files a thousand times."""
    alias = f"read_{next(_READS)}"
    with _READER_LOCK:
        cur = _READER.cursor()
    try:
        quoted = "'" + db.replace("'", "''") + "'"
        cur.execute(f"ATTACH {quoted} AS {alias} (READ_ONLY)")
        try:
            cur.execute(f"USE {alias}")
            yield cur
        finally:
            cur.execute("USE memory")
            cur.execute(f"DETACH {alias}")
    finally:
        cur.close()


def rows(db: str, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with read_only(db) as con:
        return con.execute(query, params or []).fetchall()


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120
            ) -> subprocess.CompletedProcess[str]:
    """Run the real ``batchlake`` CLI in a subprocess."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "batchlake", *args], capture_output=True,
                          text=True, env=full_env, timeout=timeout, cwd=ROOT)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a server the test starts)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Any, deadline_s: float, every: float = 0.5) -> Any:
    """Poll ``check`` until it returns something true; fail after ``deadline_s``."""
    import time

    import httpx

    end = time.monotonic() + deadline_s
    while True:
        try:
            value = check()
            if value:
                return value
        except httpx.TransportError:
            pass
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not within {deadline_s:g}s")
        time.sleep(every)


# The tests that need a Prefect server (tests/test_flow.py, tests/test_serve.py and the
# overhead bench's toy run) share one: a fresh server costs ~20 s of CPU to start (its
# database's migrations), which each of them paid before. They are one xdist group, so the
# one worker that runs them starts it once (`make test` runs with --dist loadgroup).
PREFECT_GROUP = pytest.mark.xdist_group("prefect")


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[tuple[str, dict[str, str]]]:
    """A real ``prefect server`` on 127.0.0.1 for the session: its API URL, and the
    environment a child process needs to use it."""
    import httpx

    home = tmp_path_factory.mktemp("prefect-server")
    env = {**os.environ, "PREFECT_HOME": str(home), "TMPDIR": str(home),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING",
           "PREFECT_SERVER_UI_ENABLED": "false",
           # Services the tests never use. The scheduler would also make runs of the served
           # deployments' crons, which the served process would run beside the test's own.
           # With them off the server spends ~5 s less CPU in a run of the group (36.5 s ->
           # 31.6 s, measured).
           **{f"PREFECT_SERVER_SERVICES_{name}_ENABLED": "false" for name in (
               "SCHEDULER", "LATE_RUNS", "FOREMAN", "PAUSE_EXPIRATIONS",
               "CANCELLATION_CLEANUP", "TRIGGERS", "EVENT_LOGGER")}}
    env.pop("PREFECT_API_URL", None)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
         "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{port}/api"
    try:
        with httpx.Client(timeout=2) as http:
            wait_for("prefect server", lambda: http.get(api + "/health").status_code == 200,
                     180, every=0.2)
        yield api, {**env, "PREFECT_API_URL": api}
    finally:
        stop_process(server, 20)


def stop_process(proc: subprocess.Popen[Any], timeout_s: float) -> None:
    """SIGTERM, then SIGKILL if it has not ended within ``timeout_s``."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
