"""A run's records: its row in sync_runs, the provider's watermark in sync_state, and what a
sync reads back of the stored batches to plan its requests. The statements are
``sql/runs/*.sql``; the caller holds the write lock."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

import duckdb

from batchlake import sql
from batchlake.warehouse.merge_plan import ChunkCounts


@functools.cache
def _statement(name: str) -> str:
    (text,) = sql.statements(sql.read(f"runs/{name}.sql"))
    return text


def start_run(con: duckdb.DuckDBPyConnection, run_id: str, provider: str, mode: str,
              started_at: datetime, watermark: datetime | None) -> None:
    """The run's row, status 'running', every count at zero."""
    con.execute(_statement("start"), [run_id, provider, mode, started_at, watermark])


def finish_run(con: duckdb.DuckDBPyConnection, run_id: str, provider: str, *, status: str,
               finished_at: datetime, pages: int, fetched: int, refetched: int,
               counts: ChunkCounts, warnings: list[str], error: str | None,
               results_batches: int, result_lines: int, results_failed: int, deferred: int,
               plan: str, results_backlog: int) -> None:
    """The run's row completed: its status and what it read and changed."""
    con.execute(_statement("finish"),
                [finished_at, status, pages, fetched, refetched, counts.inserted,
                 counts.updated, counts.unchanged, counts.rejected, counts.snapshots,
                 "; ".join(warnings) or None, error, results_batches, result_lines,
                 results_failed, deferred, plan or None, results_backlog, run_id, provider])


def watermark(con: duckdb.DuckDBPyConnection, provider: str) -> datetime | None:
    """The newest created_at the provider's last finished listing saw (None: none yet)."""
    rows = con.execute(_statement("watermark"), [provider]).fetchall()
    return rows[0][0] if rows else None


def advance_watermark(con: duckdb.DuckDBPyConnection, provider: str, newest: datetime,
                      run_id: str, at: datetime) -> None:
    """Move the watermark forward to ``newest`` (never back)."""
    con.execute(_statement("advance_watermark"), [provider, newest, at, run_id])


def open_batches(con: duckdb.DuckDBPyConnection, provider: str) -> list[tuple[Any, ...]]:
    """Stored non-terminal batches, newest first: (batch_id, created_at, deadline_at,
    last_changed_at, last_seen_at)."""
    return con.execute(_statement("open_batches"), [provider]).fetchall()


def stored_since(con: duckdb.DuckDBPyConnection, provider: str, unix_s: int | None) -> int:
    """Batches stored for ``provider`` created at ``unix_s`` or later (None: all, those
    without created_at included)."""
    if unix_s is None:
        rows = con.execute(_statement("stored"), [provider]).fetchall()
    else:
        rows = con.execute(_statement("stored_since"), [provider, unix_s]).fetchall()
    return int(rows[0][0])
