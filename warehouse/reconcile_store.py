"""The gateway's bill in DuckDB (batchlake reconcile): which loaded batches are due a check,
batchlake's side of each (per model, from its result lines), and the comparisons stored in
``gateway_batch_costs``, one row per batch. The SQL lives in sql/reconcile/."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import duckdb
import orjson
import polars as pl

from batchlake import sql
from batchlake.common import DatabaseError
from batchlake.transforms import (
    GATEWAY_BATCH_COSTS,
    BatchlakeModel,
    BatchlakeSide,
    Comparison,
    GatewayCost,
)
from batchlake.warehouse.db import quote_name

if TYPE_CHECKING:
    from batchlake.warehouse.load import Warehouse

RECONCILE_MEMORY = "128MB"  # the candidates' aggregate over every loaded batch's lines
FIRST_RECHECK = timedelta(hours=1)  # a missing or unpriced gateway cost, asked again after


@dataclass(frozen=True)
class ReconcileCandidate:
    """A batch whose results are loaded, and whether the gateway is to be asked now."""

    provider: str
    batch_id: str
    created_at: datetime | None
    finished_at: datetime | None
    loaded_at: datetime | None
    fingerprint: str
    due: bool


@dataclass(frozen=True)
class Checked:
    """One batch asked this run: the comparison and what the gateway's row said."""

    comparison: Comparison
    row: GatewayCost | None
    found_by: str | None  # 'id' | 'list' | None
    echo_rows: int
    fingerprint: str


@contextlib.contextmanager
def _in_memory(wh: Warehouse) -> Iterator[None]:
    """The block with DuckDB's cap raised to RECONCILE_MEMORY; running out is one line."""
    try:
        with wh.memory_cap(RECONCILE_MEMORY):
            yield
    except duckdb.OutOfMemoryException:
        raise DatabaseError(f"DuckDB ran out of memory comparing costs (cap: at least "
                            f"{RECONCILE_MEMORY}); set BATCHLAKE_DUCKDB_MEMORY higher, e.g. "
                            "1GB") from None


def reconcile_candidates(wh: Warehouse, providers: tuple[str, ...], since: datetime | None,
                         now: datetime, recheck: bool, tolerance: str
                         ) -> list[ReconcileCandidate]:
    """Every loaded batch in the window, newest finished first, each marked ``due`` or not
    (sql/reconcile/candidates.sql says when). ``tolerance``: the classifying tolerance, as
    text: another one makes every batch due once."""
    text = sql.read("reconcile/candidates.sql")
    with _in_memory(wh), wh.lock:
        df = wh.con.sql(text, params=sql.used_params(text, {
            "providers": list(providers), "since": since, "now": now, "recheck": recheck,
            "tolerance": tolerance})).pl()
    return [ReconcileCandidate(**row) for row in df.iter_rows(named=True)]


def batchlake_sides(wh: Warehouse, keys: list[tuple[str, str]]) -> dict[tuple[str, str],
                                                                         BatchlakeSide]:
    """batchlake's side of each batch in ``keys``: its lines' totals and one entry per
    model (a batch with no lines has none)."""
    due = pl.DataFrame({"provider": [k[0] for k in keys], "batch_id": [k[1] for k in keys]},
                       schema={"provider": pl.String, "batch_id": pl.String})
    with _in_memory(wh), wh.lock:
        wh.con.register("reconcile_due", due)
        try:
            df = wh.con.sql(sql.read("reconcile/batchlake_models.sql")).pl()
        finally:
            wh.con.unregister("reconcile_due")
    models: dict[tuple[str, str], list[dict[str, Any]]] = {k: [] for k in keys}
    for row in df.iter_rows(named=True):
        models[(row["provider"], row["batch_id"])].append(row)
    return {key: _side(key, rows) for key, rows in models.items()}


def _side(key: tuple[str, str], rows: list[dict[str, Any]]) -> BatchlakeSide:
    models = tuple(BatchlakeModel(
        model=r["model"], requests=r["requests"], input_tokens=r["input_tokens"],
        cached_tokens=r["cached_tokens"], cache_write_tokens=r["cache_write_tokens"],
        output_tokens=r["output_tokens"], cost=r["cost"], unpriced=r["unpriced"],
        price_basis=r["price_basis"], price_source=r["price_source"],
        price_model=r["price_model"]) for r in rows)
    costs = [m.cost for m in models if m.cost is not None]
    return BatchlakeSide(
        provider=key[0], batch_id=key[1], lines=sum(r["lines"] for r in rows),
        usage_lines=sum(m.requests for m in models),
        unpriced_lines=sum(m.unpriced for m in models),
        cost=sum(costs) if costs else None,
        input_tokens=sum(m.input_tokens for m in models),
        cached_tokens=sum(m.cached_tokens for m in models),
        cache_write_tokens=sum(m.cache_write_tokens for m in models),
        output_tokens=sum(m.output_tokens for m in models), models=models)


def _incoming(checked: list[Checked], run_id: str, at: datetime) -> pl.DataFrame:
    out = []
    for c in checked:
        cmp, row = c.comparison, c.row
        waits = cmp.status in ("gateway_missing", "gateway_unpriced")
        out.append({
            "provider": cmp.provider, "batch_id": cmp.batch_id, "status": cmp.status,
            "reason": cmp.reason, "batchlake_cost": cmp.batchlake_cost,
            "gateway_cost": cmp.gateway_cost, "difference": cmp.difference,
            "log_id": row.log_id if row else None, "found_by": c.found_by,
            "gateway_model": row.model if row else None,
            "prompt_tokens": row.prompt_tokens if row else None,
            "completion_tokens": row.completion_tokens if row else None,
            "total_tokens": row.total_tokens if row else None,
            "requests_total": row.requests_total if row else None,
            "requests_completed": row.requests_completed if row else None,
            "requests_failed": row.requests_failed if row else None,
            "incomplete": row.incomplete if row else None,
            "parse_errors": row.parse_errors if row else None,
            "model_breakdowns": (orjson.dumps(row.raw_breakdowns).decode()
                                 if row is not None and row.raw_breakdowns is not None
                                 else None),
            "logged_at": row.logged_at if row else None, "echo_rows": c.echo_rows,
            "fingerprint": c.fingerprint, "fetched_at": at, "checks": 1,
            "next_check_at": at + FIRST_RECHECK if waits else None, "run_id": run_id,
        })
    return pl.DataFrame(out, schema=GATEWAY_BATCH_COSTS.polars_schema())


def store_comparisons(wh: Warehouse, checked: list[Checked], run_id: str, at: datetime
                      ) -> None:
    """Record this run's comparisons, one row per batch (replaced), in one transaction."""
    if not checked:
        return
    names = GATEWAY_BATCH_COSTS.column_names()
    keep = {"provider", "batch_id", "checks", "next_check_at"}
    text = sql.render(sql.read("reconcile/store.sql"), {
        "columns": ", ".join(quote_name(n) for n in names),
        "updates": ",\n    ".join(f"{quote_name(n)} = excluded.{quote_name(n)}"
                                  for n in names if n not in keep),
    })
    incoming = _incoming(checked, run_id, at)
    # the key index of gateway_batch_costs lives in DuckDB's memory and grows with the
    # batches compared: 16,000 new rows ran out of a sync's 32MB cap
    with _in_memory(wh):
        with wh.lock:
            wh.con.register("reconcile_incoming", incoming)
        try:
            with wh.transaction() as con:
                for stmt in sql.statements(text):
                    con.execute(stmt)
        finally:
            with wh.lock:
                wh.con.unregister("reconcile_incoming")


def reconcile_records(wh: Warehouse, providers: tuple[str, ...], since: datetime | None
                      ) -> pl.DataFrame:
    """The last comparison of every batch in the window, differences first."""
    text = sql.read("reconcile/records.sql")
    with wh.lock:
        df: pl.DataFrame = wh.con.sql(text, params=sql.used_params(
            text, {"providers": list(providers), "since": since})).pl()
    return df
