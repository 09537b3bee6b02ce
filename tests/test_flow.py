"""The Prefect flow for real: a real Prefect server (the session's), real flow runs,
artifacts, and no secret in parameters or artifacts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from batchlake.simulator import Fault, SimGateway
from tests.conftest import PREFECT_GROUP, rows
from tests.expect import assert_matches_truth

pytestmark = [pytest.mark.prefect, PREFECT_GROUP]
CANARY = "sk-bf-FLOW-CANARY-31337"


@pytest.fixture(scope="module")
def prefect_server(prefect_api: tuple[str, dict[str, str]]) -> Iterator[None]:
    """The flows of this module run in process against the session's Prefect server."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: prefect_api[0]}):
        yield


def _read_artifacts(flow_run_id: Any) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        return list(client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))))


def test_flow_syncs_publishes_artifacts_and_keeps_secrets(prefect_server: None, db_path: str,
                                                          monkeypatch: Any) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from batchlake.flows import sync_batches

    gw = SimGateway(300, seed=12, api_key=CANARY)
    gw.faults = [Fault("status", provider="gemini", status=503, times=-1)]
    gw.start()
    monkeypatch.setenv("BIFROST_API_KEY", CANARY)
    monkeypatch.setenv("BATCHLAKE_MAX_RETRIES", "1")
    monkeypatch.setenv("BATCHLAKE_BACKOFF_BASE_S", "0.01")
    try:
        state = sync_batches(db_path=db_path, base_url=gw.base_url, return_state=True)
        out = state.result()
        assert {r["provider"]: r["status"] for r in out["results"]} == {
            "openai": "ok", "anthropic": "ok", "gemini": "failed", "bedrock": "ok",
            "azure": "ok"}
        gemini = [p for p in gw.providers if p != "gemini"]
        gw.providers = tuple(gemini)  # the truth to compare: all but the failed provider
        assert_matches_truth(gw, db_path)
        assert rows(db_path, "SELECT status FROM sync_runs WHERE provider = 'gemini'") == [
            ("failed",)]
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(state.state_details.flow_run_id)
            tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[run.id])))  # the server is the session's: others' too
        assert CANARY not in repr(run.parameters)
        assert len([t for t in tasks if t.flow_run_id == run.id]) >= 5  # one per provider
        arts = _read_artifacts(run.id)
        keys = {a.key for a in arts}
        assert {"batchlake-sync-summary", "batchlake-overdue"} <= keys
        summary = next(a for a in arts if a.key == "batchlake-sync-summary")
        assert "| openai | ok |" in str(summary.data) and "| gemini | failed |" in str(
            summary.data)
        # cost per provider: the run's loaded lines, priced, as the database holds them
        # (the full table: every figure the CLI's --format json has, as columns)
        table = [[c.strip() for c in line.strip("|").split("|")]
                 for line in str(summary.data).splitlines() if line.startswith("| ")]
        by_provider = {row[0]: dict(zip(table[0], row, strict=True)) for row in table[1:]}
        assert {"results_backlog", "warnings", "seconds", "cost_this_run_usd"} <= set(table[0])
        openai_cost = rows(db_path, "SELECT sum(cost_usd) FROM batch_results "
                                    "WHERE provider = 'openai'")[0][0]
        assert openai_cost and by_provider["openai"]["cost_this_run_usd"] == f"{openai_cost:,.4f}"
        assert all(CANARY not in str(a.data) for a in arts)
        # re-running the flow changes nothing
        gw.faults = []
        out2 = sync_batches(db_path=db_path, base_url=gw.base_url, providers=gemini)
        assert sum(r["inserted"] + r["updated"] for r in out2["results"]) == 0
    finally:
        gw.stop()
        os.environ.pop("BIFROST_API_KEY", None)


def test_dask_task_runner_gives_the_same_result(prefect_server: None, tmp_path: Any,
                                                monkeypatch: Any) -> None:
    from batchlake.flows.sync import dask_flow, sync_batches

    monkeypatch.setenv("DASK_TEMPORARY_DIRECTORY", str(tmp_path / "dask"))
    gw = SimGateway(300, seed=14, future_share=0.2)
    gw.start()
    threads_db, dask_db = str(tmp_path / "threads.duckdb"), str(tmp_path / "dask.duckdb")
    try:
        # A first sync, then an incremental one with changes. The dask file's first sync
        # runs on threads: a local cluster's start is most of this test's time, and the
        # incremental run (changes, new batches, follow-ups by id) is the harder case.
        for first in (True, False):
            sync_batches(db_path=threads_db, base_url=gw.base_url)
            if first:
                sync_batches(db_path=dask_db, base_url=gw.base_url)
            else:
                # one worker process: the tasks still run away from the flow's process,
                # where nothing of the flow's is shared (a second worker cost ~5 s of CPU)
                out = dask_flow(n_workers=1)(db_path=dask_db, base_url=gw.base_url,
                                             distributed=True)
                assert all(r["status"] == "ok" for r in out["results"])
                assert sum(r["inserted"] + r["updated"] for r in out["results"]) > 0
            gw.advance(6 * 3600)
        gw.advance(-6 * 3600)
        assert_matches_truth(gw, dask_db)
    finally:
        gw.stop()
    q = "SELECT provider, batch_id, content_hash, status FROM batches ORDER BY ALL"
    assert rows(threads_db, q) == rows(dask_db, q)
    snaps = "SELECT provider, batch_id, status_norm FROM batch_snapshots ORDER BY ALL"
    assert rows(threads_db, snaps) == rows(dask_db, snaps)


def test_cli_flow_runs_skip_heartbeats_unless_configured() -> None:
    """Prefect joins its heartbeat thread at the end of a run, which sleeps in 1 s steps: a
    CLI run ended up to 1 s late. One-shot CLI runs send none, unless the user asked."""
    from prefect.settings import get_current_settings, temporary_settings

    from batchlake.flows.sync import one_shot_prefect_settings

    with one_shot_prefect_settings():
        assert get_current_settings().flows.heartbeat_frequency is None
    with temporary_settings(updates={"flows.heartbeat_frequency": 60}), \
            one_shot_prefect_settings():
        assert get_current_settings().flows.heartbeat_frequency == 60
