"""batchlake's commands as Python functions: one per CLI command, with the same name and the
same parameters (sqlite-utils' model). The CLI parses options, calls one of these and renders
what it returns; a notebook or a script calls them directly::

    import batchlake
    run = batchlake.sync(base_url="http://localhost:8080", providers=["openai"],
                         db="data/batchlake.duckdb")
    batchlake.report(db="data/batchlake.duckdb", since="7d").sections["costs"]

Settings resolve as on the command line: the arguments given (None = not given), then the
environment (``BIFROST_*``, ``BATCHLAKE_*``), then the config file (``config=`` or
``./batchlake.toml``), then the defaults. Expected mistakes raise a ``BatchlakeError`` whose
message is one line saying what to do.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from batchlake.common import (
    BatchlakeError,
    ConfigError,
    GatewayAuthError,
    GatewayError,
    GatewayUnreachable,
    Settings,
    parse_providers,
)
from batchlake.json_values import jsonable
from batchlake.run import OnProgress, SyncReport

OnWait = Callable[[str], None]


def settings_for(config: str | None = None, **options: Any) -> Settings:
    """The settings in force for these options (None = not given), then the environment,
    the config file and the defaults (batchlake/common/config.py)."""
    from batchlake.common import resolve

    if isinstance(options.get("providers"), list | tuple):
        options["providers"] = ",".join(options["providers"])
    return resolve(options, config_file=config).settings


def _reading(db: str, wait: float, on_wait: OnWait | None) -> Any:
    """A read-only connection held only while a command reads: a sync holding the file makes
    it wait (bounded), and ``on_wait`` hears why."""
    from batchlake.warehouse import reading

    return reading(db, lock_timeout_s=wait, on_wait=on_wait)


def _one_provider(provider: str | None) -> str | None:
    return parse_providers(provider)[0] if provider else None


def preflight(settings: Settings) -> None:
    """One cheap request first: a wrong URL or key is one clear line, not N provider
    failures (and, in Prefect mode, not a flow run full of retries)."""
    from batchlake.gateway import GatewayClient

    with GatewayClient(replace(settings, max_retries=0)) as client:
        try:
            client.get_json("/v1/batches", {"provider": settings.providers[0], "limit": 1})
        except (GatewayUnreachable, GatewayAuthError):
            raise
        except GatewayError:
            pass  # e.g. one unconfigured provider: the sync reports it per provider


def run_sync(settings: Settings, *, prefect: bool | None = None, full_refresh: bool = False,
             batch_ids: list[str] | None = None, task_runner: str = "threads",
             on_progress: OnProgress | None = None, clock: datetime | None = None
             ) -> SyncReport:
    """A sync with resolved settings. Direct mode unless ``prefect`` (or PREFECT_API_URL):
    no temporary Prefect server for a one-shot run (it costs ~18 s here)."""
    if task_runner not in ("threads", "dask"):
        raise ConfigError(f"unknown task runner {task_runner!r}; use threads or dask")
    use_prefect = (prefect if prefect is not None else bool(os.environ.get("PREFECT_API_URL"))
                   ) or task_runner == "dask"
    preflight(settings)
    if use_prefect:
        from batchlake.flows import run_flow  # Prefect imports cost ~1.5 s: only when used

        return run_flow(settings, full_refresh=full_refresh, batch_ids=batch_ids,
                        dask=task_runner == "dask")
    from batchlake.pipeline import sync as pipeline_sync

    return pipeline_sync(settings, full_refresh=full_refresh, batch_ids=batch_ids,
                         on_progress=on_progress, clock=clock)


def sync(settings: Settings | None = None, *, base_url: str | None = None,
         providers: str | Sequence[str] | None = None, db: str | None = None,
         api_key: str | None = None, api_key_header: str | None = None,
         full_refresh: bool = False, strict: bool = False, prefect: bool | None = None,
         task_runner: str = "threads", insecure: bool | None = None,
         store_raw: bool | None = None, timeout: float | None = None,
         lock_timeout: float | None = None, page_limit: int | None = None,
         chunk_size: int | None = None, publish: str | None = None,
         publish_storage_version: str | None = None, results: bool | None = None,
         results_limit: int | None = None, results_budget: float | None = None,
         prices: str | None = None, prices_only: bool | None = None,
         store_result_bodies: bool | None = None, config: str | None = None,
         on_progress: OnProgress | None = None, clock: datetime | None = None,
         inputs: bool = False, store_request_bodies: bool = False) -> SyncReport:
    """``batchlake sync``: sync batches from a Bifrost gateway into DuckDB; the run's
    ``SyncReport`` (per provider: what was listed, new, changed, rejected, results read,
    backlog left, warnings). ``strict``: raise when any provider failed (a provider's failure
    is otherwise in the report, as the CLI exits non-zero only when all failed).
    ``settings``: a ready ``Settings`` instead of the options (the 0.1 call).
    ``inputs``: also read the finished batches' input files into ``batch_requests`` (ids,
    models, max_tokens, sizes, hashes; the bodies only with ``store_request_bodies``), a line
    per provider in its warnings (batchlake/inputs_stage.py).

    >>> batchlake.sync(base_url="http://localhost:8080", providers=["openai"], db="lake.duckdb")
    """
    options = dict(base_url=base_url, api_key=api_key, api_key_header=api_key_header, db=db,
                   providers=providers, insecure=insecure, store_raw=store_raw,
                   timeout=timeout, lock_timeout=lock_timeout, page_limit=page_limit,
                   chunk_size=chunk_size, publish=publish,
                   publish_storage_version=publish_storage_version, results=results,
                   results_limit=results_limit, results_budget=results_budget, prices=prices,
                   prices_only=prices_only, store_result_bodies=store_result_bodies)
    if settings is None:
        settings = settings_for(config, **options)
    elif any(v is not None for v in options.values()):
        raise ConfigError("pass either settings or options (base_url=, db=, …) to sync, not "
                          "both")
    if settings.publish_path:
        from batchlake.warehouse import check_storage_version, check_target

        check_target(settings.publish_path, settings.db_path)
        check_storage_version(settings.publish_storage_version)
    report = run_sync(settings, prefect=prefect, full_refresh=full_refresh,
                      task_runner=task_runner, on_progress=on_progress, clock=clock)
    if inputs:
        from batchlake.inputs_stage import read_inputs

        ok = tuple(r.provider for r in report.results if r.status == "ok")
        said = read_inputs(replace(settings, providers=ok), run_id=report.run_id,
                           store_bodies=store_request_bodies).lines()
        for r in report.results:
            if r.provider in said:
                r.warnings.append(said[r.provider])
    if strict and report.failed:
        raise BatchlakeError("; ".join(f"{r.provider} failed: {r.error}"
                                       for r in report.failed))
    return report


def fetch(batch_id: str, provider: str, *, base_url: str | None = None, db: str | None = None,
          api_key: str | None = None, api_key_header: str | None = None,
          config: str | None = None, on_wait: OnWait | None = None) -> dict[str, Any]:
    """``batchlake fetch``: retrieve one batch by id, upsert it, and return its stored row."""
    prov = parse_providers(provider)
    settings = settings_for(config, base_url=base_url, api_key=api_key,
                            api_key_header=api_key_header, db=db, providers=list(prov))
    rep = run_sync(settings, prefect=False, batch_ids=[batch_id])
    if rep.failed:
        raise BatchlakeError(rep.failed[0].error or "fetch failed")
    from batchlake.warehouse import query_frame

    with _reading(settings.db_path, settings.lock_timeout_s, on_wait) as con:
        df = query_frame(con, "SELECT * FROM batches WHERE provider = ? AND batch_id = ?",
                         [prov[0], batch_id])
        refused = con.execute(
            "SELECT reason FROM rejects WHERE run_id = ? AND provider = ? "
            "ORDER BY batch_id IS DISTINCT FROM ? LIMIT 1",
            [rep.run_id, prov[0], batch_id]).fetchall()
    if df.height == 0:
        why = refused[0][0] if refused else "the gateway's answer could not be stored"
        raise BatchlakeError(f"batch {batch_id!r} of {prov[0]} was refused: {why} "
                             "(kept in the rejects table)")
    row: dict[str, Any] = df.to_dicts()[0]
    return row


def results(*, base_url: str | None = None, providers: str | Sequence[str] | None = None,
            db: str | None = None, api_key: str | None = None,
            api_key_header: str | None = None, refetch: bool = False, budget: float = 0.0,
            prices: str | None = None, prices_only: bool | None = None,
            store_result_bodies: bool | None = None, lock_timeout: float | None = None,
            config: str | None = None,
            on_progress: Callable[[int, int], None] | None = None) -> SyncReport:
    """``batchlake results``: read (and price) the results of the finished batches already
    stored, newest finished first, each batch once; ``budget`` seconds at most (0: until the
    backlog is drained). ``batchlake results --status`` is ``results_status``."""
    settings = settings_for(config, base_url=base_url, api_key=api_key,
                            api_key_header=api_key_header, db=db, providers=providers,
                            prices=prices, prices_only=prices_only,
                            store_result_bodies=store_result_bodies, lock_timeout=lock_timeout)
    preflight(settings)
    from batchlake.pipeline import read_stored_results

    return read_stored_results(settings, refetch=refetch, budget_s=budget,
                               on_progress=on_progress)


@dataclass(frozen=True)
class ResultsStatus:
    """Where finished batches' results stand (``batchlake results --status``)."""

    by_provider: pl.DataFrame  # per provider: loaded, backlog, retrying, unavailable, lines
    failures: pl.DataFrame  # grouped by (provider, state, reason): count, one example id
    failing: pl.DataFrame  # every batch whose results failed, newest attempt first


def results_status(*, db: str | None = None, lock_timeout: float | None = None,
                   config: str | None = None, on_wait: OnWait | None = None
                   ) -> ResultsStatus:
    """``batchlake results --status``: the results backlog and the batches whose results
    failed, grouped by reason (reads the database only)."""
    from batchlake.warehouse import (
        failing_batches,
        grouped_failures,
        results_backlog_by_provider,
    )

    path = settings_for(config, db=db).db_path
    with _reading(path, 30.0 if lock_timeout is None else lock_timeout, on_wait) as con:
        return ResultsStatus(results_backlog_by_provider(con), grouped_failures(con),
                             failing_batches(con))


@dataclass(frozen=True)
class Report:
    """``batchlake report``'s sections (name -> frame, in display order) and the batches by
    provider and status that the HTML page draws."""

    sections: dict[str, pl.DataFrame]
    status: pl.DataFrame

    def to_json(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = jsonable(self.sections)
        return out

    def to_html(self, title: str = "batchlake report") -> str:
        from batchlake.report_html import to_html

        return to_html(self.sections, self.status, title)


def report(*, db: str | None = None, since: str | None = None, provider: str | None = None,
           wait: float = 60.0, config: str | None = None, on_wait: OnWait | None = None
           ) -> Report:
    """``batchlake report``: summary, durations, costs, errors, cache, results backlog and
    overdue batches, for batches created ``since`` ('7d', '24h') and one ``provider``."""
    from batchlake import report_frames

    window = report_frames.parse_duration(since) if since else None
    prov = _one_provider(provider)
    with _reading(settings_for(config, db=db).db_path, wait, on_wait) as con:
        return Report(report_frames.build(con, window, prov),
                      report_frames.status_by_provider(con, window, prov))


def stuck(*, db: str | None = None, older_than: str | None = None,
          provider: str | None = None, wait: float = 60.0, config: str | None = None,
          on_wait: OnWait | None = None) -> pl.DataFrame:
    """``batchlake stuck``: the overdue open batches (and, with ``older_than``, open ones
    unchanged that long); an empty frame when there are none."""
    from batchlake import report_frames

    window = report_frames.parse_duration(older_than) if older_than else None
    with _reading(settings_for(config, db=db).db_path, wait, on_wait) as con:
        return report_frames.overdue(con, _one_provider(provider), window)


@dataclass(frozen=True)
class Repriced:
    """What ``batchlake reprice`` did."""

    lines: int
    unpriced: int  # lines with usage that no price covers (see v_unpriced_models)


def reprice(*, db: str | None = None, prices: str | None = None,
            prices_only: bool | None = None, lock_timeout: float | None = None,
            config: str | None = None) -> Repriced:
    """``batchlake reprice``: recompute every stored cost from the prices in force, without
    a single request."""
    settings = settings_for(config, db=db, prices=prices, prices_only=prices_only,
                            lock_timeout=lock_timeout)
    from batchlake.pipeline import reprice_stored

    return Repriced(*reprice_stored(settings))


def export_parquet(directory: str, *, db: str | None = None,
                   partition_by: str | Sequence[str] = "provider,created_date",
                   wait: float = 60.0, config: str | None = None,
                   on_wait: OnWait | None = None) -> int:
    """``batchlake export parquet``: the tables as a hive-partitioned, zstd Parquet dataset
    under ``directory``, incrementally; how many partition files were written."""
    from batchlake.warehouse import export_parquet as run_export

    parts = (tuple(p.strip() for p in partition_by.split(","))
             if isinstance(partition_by, str) else tuple(partition_by))
    return run_export(settings_for(config, db=db).db_path, directory, parts,
                      lock_timeout_s=wait, on_wait=on_wait)


def schema() -> str:
    """``batchlake schema``: the table docs (Markdown) from the one schema definition."""
    from batchlake.transforms import markdown_docs

    return markdown_docs()


@dataclass(frozen=True)
class SettingsInForce:
    """What ``batchlake config`` shows."""

    rows: pl.DataFrame  # setting, value (secrets masked), source
    config_file: str | None  # the config file read (None: none)


def config(*, config: str | None = None) -> SettingsInForce:
    """``batchlake config``: the settings in force and where each came from."""
    from batchlake.common import resolve

    resolved = resolve({}, config_file=config)
    return SettingsInForce(pl.DataFrame(resolved.rows()), resolved.config_file)


def query(query: str, *, db: str | None = None, wait: float = 60.0,
          config: str | None = None, on_wait: OnWait | None = None) -> pl.DataFrame:
    """``batchlake sql``: a read-only query's answer (``batchlake.sql`` is the package of
    batchlake's own .sql files, so the twin of the command is called query)."""
    import duckdb

    from batchlake.warehouse import query_frame

    with _reading(settings_for(config, db=db).db_path, wait, on_wait) as con:
        try:
            return query_frame(con, query)
        except duckdb.Error as e:
            raise BatchlakeError(f"query failed: {str(e).splitlines()[0]}") from None


def fresh_demo_db(db: str, on_wait: OnWait | None = None) -> None:
    """Remove an earlier demo's file; refuse to touch a database with real syncs."""
    path = Path(db)
    if not path.exists():
        return
    with _reading(db, 30.0, on_wait) as con:
        tables = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables").fetchall()}
    if tables and "demo_info" not in tables:
        raise ConfigError(f"{db} holds real syncs; the demo writes a fresh database: "
                          "pass another --db")
    path.unlink()
    Path(f"{db}.wal").unlink(missing_ok=True)
