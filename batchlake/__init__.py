"""batchlake: Bifrost gateway batches -> polars -> DuckDB, orchestrated by Prefect.

The public surface, for notebooks and scripts::

    import batchlake
    lake = batchlake.connect("data/batchlake.duckdb")     # opens the file per query, read-only
    df = batchlake.frame(lake, "SELECT * FROM v_durations")  # a polars frame
    report = batchlake.sync(batchlake.Settings(base_url="http://localhost:8080"))

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
    from batchlake.pipeline import sync
    from batchlake.run import SyncReport

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
    "Settings",
    "SyncReport",
    "connect",
    "frame",
    "sync",
    "views",
]


def __getattr__(name: str) -> Any:
    if name in ("Lake", "connect", "frame", "views"):
        from batchlake import api

        return getattr(api, name)
    if name == "sync":
        from batchlake import pipeline

        return pipeline.sync
    if name == "SyncReport":
        from batchlake import run

        return run.SyncReport
    raise AttributeError(name)
