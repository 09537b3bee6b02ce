"""The Python API for notebooks and scripts: a connection with the views, polars frames."""

from __future__ import annotations

from typing import Any

import duckdb
import polars as pl

from batchlake.warehouse.db import connect as _connect
from batchlake.warehouse.db import migrate, query_frame

VIEWS = ("v_daily_summary", "v_durations", "v_overdue", "v_error_codes", "v_cache",
         "v_cache_similarity", "v_latency", "v_status_transitions", "v_status_time")


def connect(db_path: str = "data/batchlake.duckdb", *, read_only: bool = True
            ) -> duckdb.DuckDBPyConnection:
    """Open the batchlake database; read-only by default so a running sync is not blocked
    for long. With ``read_only=False`` the schema and views are created or upgraded."""
    con = _connect(db_path, read_only=read_only)
    if not read_only:
        migrate(con)
    return con


def frame(con: duckdb.DuckDBPyConnection, query: str, params: list[Any] | None = None
          ) -> pl.DataFrame:
    """Run ``query`` and return a polars frame."""
    return query_frame(con, query, params)


def views(con: duckdb.DuckDBPyConnection) -> dict[str, pl.DataFrame]:
    """Every analytics view as a polars frame."""
    return {v: frame(con, f"SELECT * FROM {v}") for v in VIEWS}
