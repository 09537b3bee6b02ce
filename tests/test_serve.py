"""Scheduled runs for real: a local Prefect server on 127.0.0.1, `batchlake serve` registering
both deployments, one triggered run checked in DuckDB; everything started is stopped."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from batchlake.simulator import Fault, SimGateway
from tests.conftest import PREFECT_GROUP, ROOT, rows, stop_process, wait_for
from tests.expect import assert_matches_truth
from tests.notebook_runner import run_notebook

pytestmark = [pytest.mark.prefect, PREFECT_GROUP]


def test_serve_registers_deployments_and_a_triggered_run_lands(
        prefect_api: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    api, env = prefect_api
    db = str(tmp_path / "served.duckdb")
    gw = SimGateway(150, seed=13)
    gw.start()
    serve = subprocess.Popen(
        [sys.executable, "-m", "batchlake", "serve", "--db", db],
        # the served runs follow each other at once while the gateway's clock jumps an hour:
        # a schedule interval of a millisecond keeps the polling backoff out of the way
        env={**env, "BIFROST_BASE_URL": gw.base_url, "BATCHLAKE_POLL_INTERVAL_S": "0.001"},
        cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    http = httpx.Client(timeout=10)  # one client: each new one loads the CA store again
    try:
        def deployments() -> list[dict[str, Any]]:
            r = http.post(api + "/deployments/filter", json={})
            return [d for d in r.json() if d["name"] in ("incremental", "daily-reconcile")]

        found = wait_for("deployments registered", lambda: len(deployments()) == 2, 90)
        assert found
        deps = {d["name"]: d for d in deployments()}
        assert deps["incremental"]["parameters"]["full_refresh"] is False
        assert deps["daily-reconcile"]["parameters"]["full_refresh"] is True
        crons = {d["name"]: [s["schedule"].get("cron") for s in d.get("schedules", [])]
                 for d in deps.values()}
        assert crons == {"incremental": ["*/10 * * * *"], "daily-reconcile": ["0 3 * * *"]}
        def trigger() -> str:
            def created() -> str | None:
                r = http.post(api + f"/deployments/{deps['incremental']['id']}/"
                              "create_flow_run", json={})
                # a busy Prefect server (SQLite) may answer 5xx: ask again until the deadline
                return str(r.json()["id"]) if r.status_code < 300 else None
            return str(wait_for("a flow run created", created, 60))

        def state(run_id: str) -> dict[str, Any]:
            return dict(http.get(api + f"/flow_runs/{run_id}").json())

        def finished(run_id: str) -> Callable[[], str | None]:
            def check() -> str | None:
                kind = state(run_id)["state"]["type"]
                return kind if kind in ("COMPLETED", "FAILED", "CRASHED") else None
            return check

        first = trigger()
        assert wait_for("triggered run", finished(first), 180, every=1) == "COMPLETED"
        # A notebook runs while the next scheduled run syncs (a slow gateway keeps it busy):
        # neither blocks the other.
        gw.advance(3600)
        gw.faults = [Fault("delay", endpoint="list", times=-1, delay_s=2.0)]
        second = trigger()
        wait_for("second run started", lambda: state(second)["state"]["type"] == "RUNNING",
                 120, every=0.2)
        notebook_started = time.time()
        run_notebook(db)
        assert wait_for("second run", finished(second), 180, every=1) == "COMPLETED"
        ended = state(second)["end_time"]
        assert ended and datetime.fromisoformat(ended).timestamp() > notebook_started
    finally:
        http.close()
        stop_process(serve, 20)  # SIGTERM: a backgrounded serve ignores SIGINT
        gw.stop()
    assert_matches_truth(gw, db)
    assert rows(db, "SELECT count(DISTINCT run_id), min(mode) FROM sync_runs") == [
        (2, "incremental")]


def test_serve_without_a_prefect_server_says_what_to_do() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    res = subprocess.run([sys.executable, "-m", "batchlake", "serve"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "prefect server start" in res.stderr
