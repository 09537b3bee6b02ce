"""What ``batchlake retry`` reads from and records in DuckDB (sql/retry/*.sql): the batches a
retry selects, the chains of retries they belong to, what each request's latest attempt did,
the stored costs its estimate starts from, and the files and batches a run made.

Reads take a connection the caller holds only while it reads (a retry downloads input files
between its reads, and a scheduled sync must not wait for that); writes are short
transactions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import polars as pl

from batchlake import sql
from batchlake.transforms import RETRY_BATCHES, RETRY_REQUESTS, Attempt
from batchlake.warehouse.db import FileVisits, migrate
from batchlake.warehouse.load import ArrowStream


def _read(name: str) -> str:
    return sql.read(f"retry/{name}.sql")


@dataclass(frozen=True)
class StoredBatch:
    """One batch of a chain, as stored."""

    batch_id: str
    status_norm: str
    is_terminal: bool
    created_at: datetime | None
    input_file_id: str | None
    endpoint: str | None
    completion_window: str | None
    model: str | None
    metadata: str | None  # JSON text
    request_total: int | None
    results_state: str | None  # loaded | retry | unavailable | None (not read yet)
    results_error: str | None
    answered: int  # distinct custom_ids with a line
    succeeded: int  # distinct custom_ids with a succeeded line

    @property
    def settled(self) -> str:
        """How far its outcome is known: loaded, failed, waiting or in_flight."""
        if not self.is_terminal:
            return "in_flight"
        if self.status_norm == "failed":
            return "failed"
        return "loaded" if self.results_state == "loaded" else "waiting"


def retry_links(con: duckdb.DuckDBPyConnection, provider: str) -> list[tuple[str, str]]:
    """Every (retry batch, its source) link of ``provider`` (sql/retry/links.sql)."""
    return [(str(c), str(p)) for c, p in
            con.execute(_read("links"), {"provider": provider}).fetchall()]


def selected_batches(con: duckdb.DuckDBPyConnection, provider: str,
                     batch_ids: list[str] | None, since: datetime | None) -> list[str]:
    """The finished batches a retry selects, oldest first."""
    return [str(r[0]) for r in con.execute(_read("selected"), {
        "provider": provider, "batch_ids": batch_ids, "since": since}).fetchall()]


def stored_batches(con: duckdb.DuckDBPyConnection, provider: str, batch_ids: list[str]
                   ) -> dict[str, StoredBatch]:
    """The stored batches among ``batch_ids``, with their results' state and counts."""
    if not batch_ids:
        return {}
    rows = con.execute(_read("batch_info"), {"provider": provider, "batch_ids": batch_ids})
    return {r[0]: StoredBatch(*r) for r in rows.fetchall()}


def tree_attempts(con: duckdb.DuckDBPyConnection, provider: str,
                  trees: list[tuple[str, str, int, str]]) -> dict[str, dict[str, Attempt]]:
    """Each request of some chains (``trees``: root, batch id, depth, settled) with its
    latest attempt, by root (sql/retry/attempts.sql): one query for them all."""
    frame = pl.DataFrame(trees, schema={"root": pl.String, "batch_id": pl.String,
                                        "depth": pl.Int64, "settled": pl.String},
                         orient="row")
    con.register("retry_tree", ArrowStream(frame))
    try:
        rows = con.execute(_read("attempts"), {"provider": provider}).fetchall()
    finally:
        con.unregister("retry_tree")
    out: dict[str, dict[str, Attempt]] = {}
    for root, cid, state, batch, reason, code, model in rows:
        out.setdefault(root, {})[cid] = Attempt(state, batch, reason, code, model)
    return out


@dataclass(frozen=True)
class CostMeans:
    """Mean cost of a succeeded request: per (batch, model), per batch, per model."""

    by_batch_model: dict[tuple[str, str], float]
    by_batch: dict[str, float]
    by_model: dict[str, float]

    def estimate(self, batch_id: str, model: str | None) -> float | None:
        if model is not None and (batch_id, model) in self.by_batch_model:
            return self.by_batch_model[(batch_id, model)]
        if batch_id in self.by_batch:
            return self.by_batch[batch_id]
        return self.by_model.get(model) if model is not None else None


def cost_means(con: duckdb.DuckDBPyConnection, provider: str, batch_ids: list[str]
               ) -> CostMeans:
    by_batch_model: dict[tuple[str, str], float] = {}
    by_batch: dict[str, float] = {}
    for batch, model, mean in con.execute(_read("cost_by_batch"), {
            "provider": provider, "batch_ids": batch_ids}).fetchall():
        if model is None:
            by_batch[batch] = float(mean)
        else:
            by_batch_model[(batch, model)] = float(mean)
    by_model: dict[str, float] = {}
    for m, v in con.execute(_read("cost_by_model"), {"provider": provider}).fetchall():
        by_model.setdefault(m, float(v))
    return CostMeans(by_batch_model, by_batch, by_model)


def submitted_in_flight(con: duckdb.DuckDBPyConnection, provider: str
                        ) -> list[tuple[str, str, str, str]]:
    """Retry batches batchlake submitted that have not finished (or not been seen): (retry
    batch, source batch, file, status)."""
    return [tuple(map(str, r)) for r in  # type: ignore[misc]
            con.execute(_read("submitted_in_flight"), {"provider": provider}).fetchall()]


@contextlib.contextmanager
def retry_writer(lake: FileVisits) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short write visit to the file (migrated: the retry tables exist); the file is free
    again after the block."""
    with lake.visit() as con:
        migrate(con)
        yield con


@contextlib.contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    con.execute("BEGIN")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise


def record_retry_run(con: duckdb.DuckDBPyConnection, provider: str, roots: list[str],
                     files: list[dict[str, Any]], requests: pl.DataFrame) -> None:
    """Store a run's files and requests in one transaction, replacing what earlier runs
    wrote and never submitted for the same chains."""
    files_frame = pl.DataFrame(files, schema=RETRY_BATCHES.polars_schema(), orient="row")
    req_frame = requests.select(RETRY_REQUESTS.column_names()).cast(
        RETRY_REQUESTS.polars_schema())  # type: ignore[arg-type]
    with _transaction(con):
        for stmt in sql.statements(_read("forget_written")):
            con.execute(stmt, {"provider": provider, "roots": roots})  # both use both
        con.register("incoming_retry_files", ArrowStream(files_frame))
        con.register("incoming_retry_requests", ArrowStream(req_frame))
        try:
            for stmt in sql.statements(_read("record")):
                con.execute(stmt)
        finally:
            con.unregister("incoming_retry_files")
            con.unregister("incoming_retry_requests")


def set_submit_state(con: duckdb.DuckDBPyConnection, run_id: str, file_name: str, state: str,
                     *, uploaded_file_id: str | None = None, retry_batch_id: str | None = None,
                     submitted_at: datetime | None = None, error: str | None = None) -> None:
    """Record one step of a file's submit (committed at once)."""
    with _transaction(con):
        con.execute(_read("submit_state"), {
            "state": state, "uploaded_file_id": uploaded_file_id,
            "retry_batch_id": retry_batch_id, "submitted_at": submitted_at, "error": error,
            "run_id": run_id, "file_name": file_name})
