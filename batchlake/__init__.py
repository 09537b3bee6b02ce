"""batchlake: Bifrost gateway batches -> polars -> DuckDB, orchestrated by Prefect.

The public surface, for notebooks and scripts: each command of the CLI is a function of the
same name and the same parameters (batchlake/commands.py), and the database reads as polars
frames::

    import batchlake
    run = batchlake.sync(base_url="http://localhost:8080", providers=["openai"],
                         db="data/batchlake.duckdb")            # a SyncReport
    batchlake.report(db="data/batchlake.duckdb", since="7d").sections["summary"]
    lake = batchlake.connect("data/batchlake.duckdb")     # opens the file per query, read-only
    df = batchlake.frame(lake, "SELECT * FROM v_durations")  # a polars frame

Imports are lazy so that ``batchlake --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from batchlake.common import (
    Auth,
    BatchlakeError,
    ConfigError,
    DatabaseError,
    DatabaseLocked,
    GatewayAuthError,
    GatewayBadRequest,
    GatewayBadResponse,
    GatewayError,
    GatewayNotFound,
    GatewayServerError,
    GatewayUnreachable,
    Settings,
    configure_polars_allocator,
)

configure_polars_allocator()  # before anything imports polars: see common/runtime.py

if TYPE_CHECKING:
    from batchlake.api import Lake, connect, frame, views
    from batchlake.commands import (
        Report,
        Repriced,
        ResultsStatus,
        SettingsInForce,
        config,
        export_parquet,
        fetch,
        query,
        report,
        reprice,
        results,
        results_status,
        schema,
        stuck,
        sync,
    )
    from batchlake.reconciling import Reconciled, reconcile
    from batchlake.retrying import RetryReport, retry
    from batchlake.run import ProviderResult, SyncReport

# The commands' Python twins (batchlake/commands.py) and the values they return.
_COMMANDS = ("sync", "fetch", "results", "results_status", "report", "stuck", "reprice",
             "export_parquet", "schema", "config", "query", "Report", "ResultsStatus",
             "Repriced", "SettingsInForce")
# Commands whose twins live in their stage's module (batchlake/<module>.py).
_STAGE_COMMANDS = {"reconcile": "reconciling", "Reconciled": "reconciling",
                   "retry": "retrying", "RetryReport": "retrying"}

__all__ = [
    "Auth",
    "BatchlakeError",
    "ConfigError",
    "DatabaseError",
    "DatabaseLocked",
    "GatewayAuthError",
    "GatewayBadRequest",
    "GatewayBadResponse",
    "GatewayError",
    "GatewayNotFound",
    "GatewayServerError",
    "GatewayUnreachable",
    "Lake",
    "ProviderResult",
    "Reconciled",
    "Report",
    "Repriced",
    "ResultsStatus",
    "RetryReport",
    "Settings",
    "SettingsInForce",
    "SyncReport",
    "config",
    "connect",
    "export_parquet",
    "fetch",
    "frame",
    "query",
    "reconcile",
    "report",
    "reprice",
    "results",
    "results_status",
    "retry",
    "schema",
    "stuck",
    "sync",
    "views",
]


def __getattr__(name: str) -> Any:
    if name in ("Lake", "connect", "frame", "views"):
        from batchlake import api

        return getattr(api, name)
    if name in _COMMANDS:
        from batchlake import commands

        return getattr(commands, name)
    if name in _STAGE_COMMANDS:
        import importlib

        return getattr(importlib.import_module(f"batchlake.{_STAGE_COMMANDS[name]}"), name)
    if name in ("SyncReport", "ProviderResult"):
        from batchlake import run

        return getattr(run, name)
    raise AttributeError(name)
