"""The Python API for notebooks and scripts: polars frames from the database, without ever
keeping the file from the scheduled sync.

DuckDB lets one process write a file while no other process has it open, so a connection a
notebook keeps between cells would make every sync wait and fail. ``connect`` therefore hands
out a ``Lake``: it opens the file read-only for each query, reads the answer into polars and
closes it again. A query that meets a running sync waits for it (bounded, said once on
stderr). Tools that must keep a connection open read the snapshot a sync publishes
(``batchlake sync --publish PATH``) instead.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

import duckdb
import polars as pl

from batchlake.common import DatabaseError
from batchlake.warehouse import connect as _connect
from batchlake.warehouse import migrate, query_frame, reading

VIEWS = ("v_daily_summary", "v_durations", "v_overdue", "v_error_codes", "v_cache",
         "v_cache_similarity", "v_latency", "v_status_transitions", "v_status_time",
         "v_batch_costs", "v_daily_costs", "v_model_costs", "v_provider_costs", "v_tag_costs",
         "v_request_errors", "v_unpriced_models", "v_retry_lineage", "v_request_outcomes",
         "v_unanswered_requests", "v_cost_reconcile")


def _say_on_stderr(message: str) -> None:
    sys.stderr.write(f"batchlake: {message}\n")


class Rows(list[tuple[Any, ...]]):
    """A query's rows, already read (the file is closed again). ``fetchall``/``fetchone``
    let code written for a DuckDB connection (``con.execute(q).fetchall()``) run as is."""

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self)

    def fetchone(self) -> tuple[Any, ...] | None:
        return self[0] if self else None


class Lake:
    """The batchlake database, opened read-only for one query at a time.

    >>> lake = batchlake.connect("data/batchlake.duckdb")
    >>> lake.frame("SELECT * FROM v_durations")      # a polars frame; the file is closed again
    """

    def __init__(self, db_path: str, *, wait_s: float = 60.0) -> None:
        self.db_path = db_path
        self.wait_s = wait_s  # how long a query waits for a sync that holds the file
        with self._open():  # a wrong path is one clear error now, not at the first query
            pass

    def _open(self) -> Any:
        return reading(self.db_path, lock_timeout_s=self.wait_s, on_wait=_say_on_stderr)

    def frame(self, query: str, params: list[Any] | None = None) -> pl.DataFrame:
        """Run ``query`` and return its answer as a polars frame."""
        with self._open() as con:
            return query_frame(con, query, params)

    def execute(self, query: str, params: list[Any] | None = None) -> Rows:
        """Run ``query`` and return its rows as tuples."""
        with self._open() as con:
            return Rows(con.execute(query, params or []).fetchall())

    def views(self) -> dict[str, pl.DataFrame]:
        """Every analytics view as a polars frame, read in one open of the file."""
        with self._open() as con:
            return {v: query_frame(con, f"SELECT * FROM {v}") for v in VIEWS}

    def close(self) -> None:
        """Nothing to release (kept so code written for a DuckDB connection still runs)."""

    def __enter__(self) -> Lake:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Lake({self.db_path!r})"


def connect(db_path: str = "data/batchlake.duckdb", *, read_only: bool = True,
            wait_s: float = 60.0) -> Lake | duckdb.DuckDBPyConnection:
    """The database for reading: a ``Lake`` that holds the file only while a query runs.

    ``read_only=False`` returns a plain writable DuckDB connection (the schema and views
    created or upgraded); it holds the file's lock until closed, so syncs wait for it."""
    if read_only:
        return Lake(db_path, wait_s=wait_s)
    con = _connect(db_path, lock_timeout_s=wait_s)
    try:
        migrate(con)
    except duckdb.Error as e:
        con.close()
        raise DatabaseError(f"cannot prepare {db_path}: {str(e).splitlines()[0][:200]}"
                            ) from None
    return con


def frame(con: Lake | duckdb.DuckDBPyConnection, query: str,
          params: list[Any] | None = None) -> pl.DataFrame:
    """Run ``query`` on a ``Lake`` (or a DuckDB connection) and return a polars frame."""
    if isinstance(con, Lake):
        return con.frame(query, params)
    return query_frame(con, query, params)


def views(con: Lake | duckdb.DuckDBPyConnection) -> dict[str, pl.DataFrame]:
    """Every analytics view as a polars frame."""
    if isinstance(con, Lake):
        return con.views()
    return {v: query_frame(con, f"SELECT * FROM {v}") for v in VIEWS}
