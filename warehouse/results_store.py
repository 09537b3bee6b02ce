"""Batch results in DuckDB: which finished batches still need them, set-based loads priced in
SQL, the per-batch state, and repricing.

A batch's lines, its state row and its rejects commit in one transaction, together with the
other batches of the same load group: a crash leaves each batch either whole or absent (and
absent means asked again), a re-read replaces the batch's lines, so nothing is counted twice.
Lines are staged as Parquet by the fetching threads and read by DuckDB's own reader, like
batch chunks (warehouse/staged_parts.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import duckdb
import polars as pl

from batchlake import sql
from batchlake.transforms import BATCH_RESULTS, RESULT_LINE_COLUMNS
from batchlake.warehouse.db import quote_name

if TYPE_CHECKING:
    from batchlake.warehouse.load import Warehouse

# Finished batches whose results hold output: completed (Anthropic's ended), and expired or
# cancelled ones, which can still hold finished requests. Failed batches have none.
STATUSES_WITH_OUTPUT = ("completed", "expired", "cancelled")


def _values() -> dict[str, str]:
    line_cols = [c.name for c in RESULT_LINE_COLUMNS]
    values = {
        "line_cols": ", ".join(quote_name(c) for c in line_cols),
        "line_cols_r": ", ".join(f"r.{quote_name(c)}" for c in line_cols),
        "result_cols": ", ".join(quote_name(c) for c in BATCH_RESULTS.column_names()),
        "lookup": sql.read("results_store/lookup.sql"),
    }
    priced = sql.read("results_store/priced.sql")
    values["priced_incoming"] = sql.render(priced, {**values, "rows": "incoming_results"})
    values["priced_stored"] = sql.render(priced, {**values, "rows": "batch_results"})
    return values


_STATEMENTS: dict[str, list[str]] = {}


def statements(name: str) -> list[str]:
    if name not in _STATEMENTS:
        _STATEMENTS[name] = sql.statements(sql.render(sql.read(f"results_store/{name}.sql"),
                                                      _values()))
    return _STATEMENTS[name]


# How long a provider keeps a finished batch's results, in days after the batch's creation
# (documented: Anthropic's Message Batches results are available for 29 days). A batch older
# than that is settled as unavailable without a request (unless --refetch).
RESULTS_RETENTION_DAYS: dict[str, int] = {"anthropic": 29}


@dataclass
class PendingBatch:
    """A finished batch whose results are to be read."""

    provider: str
    batch_id: str
    model: str | None  # the batch's requested model: a line without one is priced as this
    replace: bool = False  # lines are stored already (a --refetch): replace them
    listed_now: bool = False  # a listing of this run showed it: the gateway knows it


@dataclass
class BatchOutcome:
    """What reading one batch's results gave: staged lines, or why there are none."""

    provider: str
    batch_id: str
    state: str  # loaded | retry | unavailable
    replace: bool = False
    lines: int = 0
    rejected_lines: int = 0
    parse_errors: int = 0
    files: list[str] = field(default_factory=list)  # staged Parquet parts of the lines
    # Lines of a small batch, kept in memory until its group is staged as one file: one
    # Parquet file per batch cost more than the lines themselves (thousands of tiny files).
    frames: list[pl.DataFrame] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    status: int | None = None
    unreadable: bool = False  # the body came whole and cannot be read (see state.sql)
    # a 404/405 that may be the route's, not the batch's (batchlake/results_stage.py _RouteWatch)
    route_suspect: bool = False  # no Bifrost error body
    same_suspect: bool = False  # a Bifrost-bodied 404
    listed_now: bool = False  # the batch was in a listing of this run (PendingBatch)

    def remove(self) -> None:
        for f in self.files:
            Path(f).unlink(missing_ok=True)
        self.frames = []


def _pending_where(providers: list[str], *, refetch: bool, now: datetime, run_id: str,
                   batch_ids: list[str] | None) -> tuple[str, list[Any]]:
    statuses = ", ".join(f"'{s}'" for s in STATUSES_WITH_OUTPUT)
    where = (f"b.provider IN (SELECT unnest(?::VARCHAR[])) AND b.is_terminal "
             f"AND b.status_norm IN ({statuses}) AND s.run_id IS DISTINCT FROM ?")
    params: list[Any] = [providers, run_id]
    if not refetch:
        where += " AND (s.state IS NULL OR (s.state = 'retry' AND s.next_attempt_at <= ?))"
        params.append(now)
    if batch_ids:
        where += " AND b.batch_id IN (SELECT unnest(?::VARCHAR[]))"
        params.append(batch_ids)
    return where, params


# When a batch finished: what "newest finished first" orders by.
_FINISHED_AT = "coalesce(b.completed_at, b.cancelled_at, b.expired_at, b.created_at)"


def pending_batches(wh: Warehouse, providers: list[str], *, refetch: bool, now: datetime,
            run_id: str, batch_ids: list[str] | None = None, limit: int = 2000
            ) -> list[PendingBatch]:
    """Finished batches with output whose results are not stored yet (or, with ``refetch``,
    all of them), newest finished first, at most ``limit``; a batch to retry waits for its
    ``next_attempt_at``; a batch this run has asked already is not given again. ``now`` is
    the run's start: a batch seen since then was in this run's listing."""
    if not providers:
        return []
    where, params = _pending_where(providers, refetch=refetch, now=now, run_id=run_id,
                                   batch_ids=batch_ids)
    rows = wh.query(
        "SELECT b.provider, b.batch_id, b.model_requested, coalesce(s.state = 'loaded', false), "
        "coalesce(b.last_seen_at >= ?, false) "
        "FROM batches b LEFT JOIN batch_results_state s USING (provider, batch_id) "
        f"WHERE {where} ORDER BY {_FINISHED_AT} DESC NULLS LAST, b.provider, b.batch_id "
        f"LIMIT {int(limit)}", [now, *params])
    return [PendingBatch(p, bid, model, bool(stored), bool(seen))
            for p, bid, model, stored, seen in rows]


def pending_batch_counts(wh: Warehouse, providers: list[str], *, refetch: bool, now: datetime,
                   run_id: str, batch_ids: list[str] | None = None) -> dict[str, int]:
    """Per provider, the finished batches still waiting for their results (the backlog)."""
    if not providers:
        return {}
    where, params = _pending_where(providers, refetch=refetch, now=now, run_id=run_id,
                                   batch_ids=batch_ids)
    return {p: int(n) for p, n in wh.query(
        "SELECT b.provider, count(*) FROM batches b LEFT JOIN batch_results_state s "
        f"USING (provider, batch_id) WHERE {where} GROUP BY b.provider", params)}


def settle_past_retention(wh: Warehouse, providers: list[str], *, now: datetime,
                          run_id: str, batch_ids: list[str] | None = None) -> dict[str, int]:
    """Settle, without a request, the pending batches whose provider no longer keeps their
    results (RESULTS_RETENTION_DAYS) as unavailable with that reason; per provider, how many."""
    settled: dict[str, int] = {}
    for provider, days in RESULTS_RETENTION_DAYS.items():
        if provider not in providers:
            continue
        where, params = _pending_where([provider], refetch=False, now=now, run_id=run_id,
                                       batch_ids=batch_ids)
        reason = (f"{provider} keeps batch results for {days} days after a batch's creation; "
                  "not requested (batchlake results --refetch asks anyway)")
        with wh.transaction() as con:
            n = con.execute(
                "INSERT INTO batch_results_state AS t (provider, batch_id, state, lines, "
                "rejected_lines, parse_errors, attempts, last_error, last_attempt_at, run_id, "
                "same_failures) "
                "SELECT b.provider, b.batch_id, 'unavailable', 0, 0, 0, 0, ?, ?, ?, 0 "
                "FROM batches b LEFT JOIN batch_results_state s USING (provider, batch_id) "
                f"WHERE {where} AND b.created_at < ? - to_days(?) "
                "ON CONFLICT (provider, batch_id) DO UPDATE SET state = 'unavailable', "
                "last_error = excluded.last_error, next_attempt_at = NULL, "
                "run_id = excluded.run_id",
                [reason, now, run_id, *params, now, days]).fetchall()
            settled[provider] = int(n[0][0]) if n else 0
    return settled


def _state_frame(outcomes: list[BatchOutcome], run_id: str, at: datetime) -> pl.DataFrame:
    return pl.DataFrame({
        "provider": [o.provider for o in outcomes],
        "batch_id": [o.batch_id for o in outcomes],
        "state": [o.state for o in outcomes],
        "lines": [o.lines for o in outcomes],
        "rejected_lines": [o.rejected_lines for o in outcomes],
        "parse_errors": [o.parse_errors for o in outcomes],
        "last_error": [o.error for o in outcomes],
        "last_status": [o.status for o in outcomes],
        "attempted_at": [at] * len(outcomes),
        "run_id": [run_id] * len(outcomes),
        "replace": [o.replace for o in outcomes],
        "same_failures": [1 if o.unreadable else 0 for o in outcomes],
    }, schema={"provider": pl.String, "batch_id": pl.String, "state": pl.String,
               "lines": pl.Int64, "rejected_lines": pl.Int64, "parse_errors": pl.Int64,
               "last_error": pl.String, "last_status": pl.Int64,
               "attempted_at": pl.Datetime("us", "UTC"), "run_id": pl.String,
               "replace": pl.Boolean, "same_failures": pl.Int64})


class PriceUpdateLike(Protocol):
    replace: bool
    prices: pl.DataFrame
    tiers: pl.DataFrame


class PriceSource(Protocol):
    """The run's prices (batchlake/pricing.py's PriceCache)."""

    def for_load(self, names: Iterable[tuple[str, str]],
                 stored_names: Callable[[], Iterable[tuple[str, str]]], *,
                 replace: bool = False) -> Any: ...
    def stored(self, update: Any) -> None: ...


def _names(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    return [(p, m) for p, m in con.execute(
        f"SELECT DISTINCT provider, model FROM {table} WHERE model IS NOT NULL").fetchall()]


def store_prices(con: duckdb.DuckDBPyConnection, prices: PriceSource, table: str, *,
                 replace: bool = False) -> Any:
    """Store what ``prices`` says the lines of ``table`` need (inside the caller's
    transaction); returns the update, to report as stored after the commit."""
    update = prices.for_load(_names(con, table), lambda: _names(con, "batch_results"),
                             replace=replace)
    if update is not None:
        write_prices(con, update)
    return update


def load_results_group(wh: Warehouse, outcomes: list[BatchOutcome], *, run_id: str, at: datetime,
               prices: PriceSource) -> None:
    """Commit a group of batches' outcomes in one transaction: lines priced from the prices
    table (first replaced by the run's prices, if no load of the run has stored them yet),
    states, rejects."""
    from batchlake.warehouse.load import ArrowStream

    if not outcomes:
        return
    loaded = [o for o in outcomes if o.state == "loaded"]
    files = [f for o in loaded for f in o.files]
    small = [df for o in loaded for df in o.frames]
    if small:  # staged together, by the committing thread, as one file
        path = wh.stage_path("results")
        pl.concat(small).write_parquet(path, compression="lz4", statistics=False)
        loaded[0].files.append(path)  # removed with the group
        files.append(path)
    states = _state_frame(outcomes, run_id, at)
    try:
        # the lock spans the commit and ``stored``: no other load asks for the prices between
        with wh.lock:
            with wh.transaction() as con:
                update = None
                con.register("incoming_states", ArrowStream(states))
                try:
                    if files:
                        paths = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
                        con.execute("CREATE OR REPLACE TEMP VIEW incoming_results AS SELECT * "
                                    f"FROM read_parquet([{paths}])")
                        update = store_prices(con, prices, "incoming_results")
                        con.execute("CREATE OR REPLACE TEMP VIEW incoming_batches AS SELECT "
                                    "provider, batch_id, replace FROM incoming_states "
                                    "WHERE state = 'loaded'")
                        for stmt in statements("load"):
                            con.execute(stmt)
                    for stmt in statements("state"):
                        con.execute(stmt)
                finally:
                    con.unregister("incoming_states")
                rejects = [r for o in outcomes for r in o.rejects]
                if rejects:
                    wh._insert_rejects(rejects, run_id, at)
            if update is not None:
                prices.stored(update)
    finally:
        for o in outcomes:
            o.remove()


def write_prices(con: duckdb.DuckDBPyConnection, update: PriceUpdateLike) -> None:
    """Store a price update (inside the caller's transaction): the whole tables replaced, or
    the rows of new names added."""
    from batchlake.warehouse.load import ArrowStream

    for table, frame in (("prices", update.prices), ("price_tiers", update.tiers)):
        if update.replace:
            con.execute(f"DELETE FROM {table}")
        if frame.is_empty():
            continue
        con.register("incoming_prices", ArrowStream(frame))
        try:
            cols = ", ".join(quote_name(c) for c in frame.columns)
            con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM incoming_prices")
        finally:
            con.unregister("incoming_prices")


def reprice_lines(wh: Warehouse, prices: PriceSource) -> tuple[int, int]:
    """Store the prices in force for every stored line's name and recompute every cost;
    return (lines, unpriced)."""
    with wh.transaction() as con:
        store_prices(con, prices, "batch_results", replace=True)
        for stmt in statements("reprice"):
            con.execute(stmt)
    lines, unpriced = wh.query("SELECT count(*), count(*) FILTER (WHERE cost_usd IS NULL) "
                               "FROM batch_results")[0]
    return int(lines), int(unpriced)


def results_backlog_by_provider(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Per provider: finished batches, loaded, backlog, retries (due, waiting), unavailable,
    the backlog's oldest and newest finish, lines stored (sql/results_store/status.sql)."""
    from batchlake.warehouse.db import query_frame

    return query_frame(con, sql.read("results_store/status.sql"))


def failing_batches(con: duckdb.DuckDBPyConnection, limit: int | None = None) -> pl.DataFrame:
    """The batches whose results failed, newest attempt first, with the reason (``limit``:
    the newest that many)."""
    from batchlake.warehouse.db import query_frame

    text = sql.read("results_store/failing.sql")
    return query_frame(con, text + (f"\nLIMIT {int(limit)}" if limit is not None else ""))


def grouped_failures(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The failed batches grouped by (provider, state, reason): a count and one example id."""
    from batchlake.warehouse.db import query_frame

    return query_frame(con, sql.read("results_store/failing_grouped.sql"))

