"""The Prefect flow: wiring only. Each provider is one coarse task that calls
``batchlake.pipeline.sync_provider``; the flow publishes artifacts and overdue events.

Secrets never travel as parameters: the API key comes from the environment
(``BIFROST_API_KEY``), a Prefect Secret block named ``bifrost-api-key``, or, for a CLI run in
the same process, the settings the CLI hands over in memory.
"""

from __future__ import annotations

import contextlib
import os
import threading
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.futures import as_completed
from prefect.runtime import flow_run
from prefect.settings import get_current_settings, temporary_settings
from prefect.task_runners import ThreadPoolTaskRunner

from batchlake import report_frames as rpt
from batchlake.common import (
    DEFAULT_DB,
    BatchlakeError,
    ConfigError,
    Settings,
    parse_providers,
    sync_runtime,
)
from batchlake.flows.remote import fetch_provider_task, settings_from_env
from batchlake.gateway import GatewayClient
from batchlake.pipeline import read_results, sync_provider
from batchlake.publishing import publish_snapshot
from batchlake.run import (
    ProviderFailed,
    ProviderFeed,
    ProviderResult,
    RunContext,
    SyncReport,
    new_run_id,
    now_utc,
)
from batchlake.warehouse import Warehouse

MAX_OVERDUE_EVENTS = 100  # an automation needs a few events, not a flood
# Run contexts live here, keyed by run id, so tasks take only plain strings as parameters.
_CONTEXTS: dict[str, RunContext] = {}
_RESULTS: dict[str, dict[str, ProviderResult]] = {}
_WAREHOUSES: dict[str, Warehouse] = {}
_FEEDS: dict[str, ProviderFeed] = {}  # providers handed to the run's results task as they end
_HANDOVER = threading.local()  # settings a CLI run passes in memory (never as parameters)


def _settings(db_path: str, base_url: str | None, providers: list[str] | None) -> Settings:
    handed: Settings | None = getattr(_HANDOVER, "settings", None)
    if handed is not None:
        return handed
    return settings_from_env(db_path, base_url, providers)


@task(retries=2, retry_delay_seconds=[1, 5], cache_policy=NO_CACHE,
      task_run_name="sync-{provider}")
def sync_provider_task(run_id: str, provider: str, batch_ids: list[str] | None = None
                       ) -> dict[str, Any]:
    """List + fetch + transform + load one provider (streamed in chunks)."""
    failure = _run_provider(run_id, provider, batch_ids)
    if failure is not None:
        # Raised here, outside the frames that hold the DB connection: Prefect keeps the
        # exception (and its traceback) in the task state.
        raise ProviderFailed(failure)
    return _RESULTS[run_id][provider].as_row()


@task(cache_policy=NO_CACHE, task_run_name="results")
def results_task(run_id: str, batch_ids: list[str] | None = None) -> None:
    """Read the finished batches' results, newest first, within the results budget, for the
    providers whose batches synced, each once its provider task has ended (the flow hands
    them over as they end: batchlake/pipeline.py read_results)."""
    read_results(_CONTEXTS[run_id], _FEEDS[run_id], batch_ids=batch_ids)


def _run_provider(run_id: str, provider: str, batch_ids: list[str] | None) -> str | None:
    ctx = _CONTEXTS[run_id]
    try:
        _RESULTS[run_id][provider] = sync_provider(ctx, provider, batch_ids=batch_ids,
                                                   raise_errors=True)
    except ProviderFailed as e:
        _RESULTS[run_id][provider] = _last_result(_WAREHOUSES[run_id], run_id, provider)
        return str(e)
    return None


def _last_result(wh: Warehouse, run_id: str, provider: str) -> ProviderResult:
    rows = wh.query(
        "SELECT status, error_message, pages, fetched FROM sync_runs "
        "WHERE run_id = ? AND provider = ?", [run_id, provider])
    r = ProviderResult(provider)
    if rows:
        r.status, r.error, r.pages, r.fetched = rows[0]
    return r


@flow(name="sync-batches", task_runner=ThreadPoolTaskRunner(max_workers=8),  # type: ignore[arg-type]
      validate_parameters=True)
def sync_batches(
    providers: list[str] | None = None,
    batch_ids: list[str] | None = None,
    db_path: str = str(DEFAULT_DB),
    base_url: str | None = None,
    full_refresh: bool = False,
    distributed: bool = False,
    publish_path: str | None = None,
    publish_storage_version: str | None = None,
) -> dict[str, Any]:
    """Sync batches from a Bifrost gateway into DuckDB, one task per provider.

    ``distributed=True`` (used with a Dask task runner, see ``dask_flow``): tasks only fetch
    and flatten on the workers; this flow process loads their frames. ``publish_path``:
    after the last commit, replace that file with a read-only copy of the database."""
    logger = get_run_logger()
    settings = _settings(db_path, base_url, providers)
    if publish_path:
        settings = replace(settings, publish_path=publish_path,
                           publish_storage_version=publish_storage_version)
    provs = parse_providers(providers) if providers else settings.providers
    run_id = f"prefect-{flow_run.get_id() or new_run_id()}"
    started = now_utc()
    _RESULTS[run_id] = {}
    with sync_runtime(), \
            Warehouse(settings.db_path, lock_timeout_s=settings.lock_timeout_s,
                      group_rows=settings.chunk_size) as wh, \
            GatewayClient(settings) as client:
        ctx = RunContext(settings, wh, client, run_id, started, full_refresh, None, logger,
                         providers_at_once=len(provs))
        if not distributed:
            # Remote workers receive a pickled copy of this module's state: a live
            # connection in it could not travel, so only the thread path registers.
            _CONTEXTS[run_id] = ctx
            _WAREHOUSES[run_id] = wh
        try:
            if distributed:
                results = _run_distributed(ctx, provs, base_url or settings.base_url,
                                           batch_ids)
            else:
                results = _run_tasks(run_id, provs, batch_ids)
            overdue = rpt.overdue(wh.con)
            costs = run_costs(wh, run_id)
            report = SyncReport(run_id, started, results)
            report.published = publish_snapshot(wh, settings, report)
        finally:
            _CONTEXTS.pop(run_id, None)
            _RESULTS.pop(run_id, None)
            _WAREHOUSES.pop(run_id, None)
            _FEEDS.pop(run_id, None)
    _publish(report, overdue.to_dicts(), costs)
    if report.all_failed:
        raise BatchlakeError("every provider failed: " + "; ".join(
            f"{r.provider}: {r.error}" for r in report.failed))
    return {"run_id": run_id, "results": report.as_json()["providers"],
            "overdue": len(overdue), "published": report.published}


def _run_tasks(run_id: str, provs: tuple[str, ...], batch_ids: list[str] | None
               ) -> list[ProviderResult]:
    """One task per provider and one coarse results task beside them, which reads each
    provider's results once its task has ended (retries included), while others list."""
    feed = _FEEDS[run_id] = ProviderFeed(len(provs))
    futures = {sync_provider_task.submit(run_id, p, batch_ids): p for p in provs}
    reading = results_task.submit(run_id, batch_ids)
    wh = _WAREHOUSES[run_id]
    ended: dict[str, ProviderResult] = {}
    try:
        for f in as_completed(list(futures)):
            p = futures[f]
            ended[p] = _RESULTS[run_id].get(p) or _last_result(wh, run_id, p)
            feed.add(ended[p])
    finally:
        for p in provs:  # the results task waits for every provider: each ends, whatever
            if p not in ended:
                feed.add(_last_result(wh, run_id, p))
        reading.wait()
    reading.result()  # a crash of the results stage fails the flow, as it always did
    return [ended[p] for p in provs]


def _run_distributed(ctx: RunContext, provs: tuple[str, ...], base_url: str,
                     batch_ids: list[str] | None) -> list[ProviderResult]:
    """Workers fetch and flatten batches; this process loads them, then reads the finished
    batches' results (one writer per DuckDB file)."""
    wh, run_id, started = ctx.warehouse, ctx.run_id, ctx.started_at
    assert isinstance(wh, Warehouse)
    futures = []
    for p in provs:
        mark = None if ctx.full_refresh or batch_ids else wh.watermark(p)
        open_rows = [] if batch_ids else wh.open_batches(p)
        futures.append(fetch_provider_task.submit(run_id, p, base_url, mark, open_rows,
                                                  started, ctx.full_refresh, batch_ids))
    results = []
    for f in futures:
        result, collector = f.result()
        collector.replay(wh, result, run_id=run_id, observed_at=started)
        results.append(result)
    read_results(ctx, results, batch_ids=batch_ids)
    return results


def dask_flow(n_workers: int = 2) -> Any:
    """``sync_batches`` on a local Dask cluster (processes). On one machine the thread pool is
    faster (cluster start ~18 s here); this is the path to many machines: pass your own
    cluster address via prefect-dask's ``DaskTaskRunner(address=…)`` the same way."""
    try:
        from prefect_dask.task_runners import DaskTaskRunner
    except ImportError:
        raise ConfigError("the dask task runner needs prefect-dask: "
                          "pip install 'batchlake[dask]'") from None

    runner = DaskTaskRunner(cluster_kwargs={"n_workers": n_workers, "threads_per_worker": 1,
                                            "processes": True, "dashboard_address": None})
    return sync_batches.with_options(task_runner=runner)  # type: ignore[arg-type]


def _jsonable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r.items()}
            for r in rows]


def run_costs(wh: Warehouse, run_id: str) -> dict[str, tuple[Any, Any, Any]]:
    """Per provider: (cost of the lines this run loaded, cost of all stored lines, unpriced
    lines with usage) in USD; NULL sums stay None (no priced line, never 0)."""
    rows = wh.query(
        "SELECT provider, sum(cost_usd) FILTER (WHERE run_id = ?), sum(cost_usd), "
        "count(*) FILTER (WHERE cost_usd IS NULL AND input_tokens IS NOT NULL) "
        "FROM batch_results GROUP BY provider", [run_id])
    return {p: (run, total, unpriced) for p, run, total, unpriced in rows}


def _usd(v: Any) -> str:
    return "" if v is None else f"{float(v):,.4f}"


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _publish(report: SyncReport, overdue: list[dict[str, Any]],
             costs: dict[str, tuple[Any, Any, Any]]) -> None:
    """Markdown summary + overdue table artifacts, and one event per overdue batch."""
    # The full table, every figure a ProviderResult carries (the CLI prints a short line per
    # provider; its --format json and this artifact keep them all), with the run's costs.
    rows = []
    for r in report.results:
        run_cost, total_cost, unpriced = costs.get(r.provider, (None, None, 0))
        rows.append({**r.as_row(), "cost_this_run_usd": _usd(run_cost),
                     "cost_stored_usd": _usd(total_cost), "unpriced_lines": unpriced})
    columns = list(rows[0]) if rows else ["provider"]
    lines = [f"# batchlake sync {report.run_id}", "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_md_cell(row[c]) for c in columns) + " |" for row in rows]
    lines += ["", f"Overdue batches: **{len(overdue)}**"]
    create_markdown_artifact("\n".join(lines), key="batchlake-sync-summary",
                             description="Per-provider sync counts")
    rows = _jsonable(overdue)
    create_table_artifact(rows or [{"provider": "", "batch_id": "(none overdue)"}],
                          key="batchlake-overdue", description="Overdue batches")
    for row in rows[:MAX_OVERDUE_EVENTS]:
        emit_event(
            event="batchlake.batch.overdue",
            resource={"prefect.resource.id": f"batchlake.batch.{row['provider']}."
                                             f"{row['batch_id']}",
                      "batchlake.provider": str(row["provider"])},
            payload={k: v for k, v in row.items() if k != "batch_id"},
        )


def one_shot_prefect_settings() -> AbstractContextManager[object]:
    """Prefect settings for a flow run the CLI starts and waits for.

    Prefect's flow-run heartbeat thread sleeps in 1 s steps and the engine joins it at the
    end of every run, so a run ends up to 1 s late (0.5 s on average, measured here: runs
    of 5.4 s and 6.5 s for the same sync). Heartbeats tell a server that a run it did not
    start is alive; a one-shot CLI run is watched by its caller, so it sends none unless
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY is set. Served deployments keep Prefect's default."""
    if "heartbeat_frequency" in get_current_settings().flows.model_fields_set:
        return contextlib.nullcontext()
    return temporary_settings(updates={"flows.heartbeat_frequency": None})


def run_flow(settings: Settings, *, full_refresh: bool = False,
             batch_ids: list[str] | None = None, dask: bool = False) -> SyncReport:
    """Run the flow in this process (CLI --prefect): the settings, secrets included, are
    handed over in memory; only non-secret values become flow parameters."""
    _HANDOVER.settings = settings
    if dask and settings.auth.api_key:
        # Dask workers are other processes: they read the key from their environment.
        os.environ.setdefault("BIFROST_API_KEY", settings.auth.api_key)
    flow_fn = dask_flow() if dask else sync_batches
    try:
        with one_shot_prefect_settings():
            out = flow_fn(providers=list(settings.providers), batch_ids=batch_ids,
                          db_path=settings.db_path, base_url=settings.base_url,
                          full_refresh=full_refresh, distributed=dask,
                          publish_path=settings.publish_path,
                          publish_storage_version=settings.publish_storage_version)
    finally:
        _HANDOVER.settings = None
    results = []
    for row in out["results"]:
        r = ProviderResult(row["provider"], status=row["status"], mode=row["mode"],
                           pages=row["pages"], fetched=row["fetched"],
                           refetched=row["refetched_by_id"], error=row["error"] or None)
        r.counts.inserted, r.counts.updated = row["inserted"], row["updated"]
        r.counts.unchanged, r.counts.rejected = row["unchanged"], row["rejected"]
        r.counts.snapshots = row["snapshots"]
        r.results_batches, r.result_lines = row["results_batches"], row["result_lines"]
        r.results_failed = row["results_failed"]
        r.deferred, r.plan = row["deferred"], row["plan"]
        r.results_backlog, r.seconds = row["results_backlog"], row["seconds"]
        r.warnings = list(row["warnings"])
        results.append(r)
    return SyncReport(out["run_id"], now_utc(), results, out.get("published"))
