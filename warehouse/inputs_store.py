"""Input files' requests in DuckDB (``sync --inputs``, sql/inputs/*.sql): which finished
batches' inputs are still to read, and one batch's requests with its state, in one
transaction (a re-read replaces them whole; nothing doubles)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from batchlake import sql
from batchlake.warehouse.load import Warehouse


@dataclass(frozen=True)
class PendingInput:
    provider: str
    batch_id: str
    input_file_id: str
    model: str | None
    endpoint: str | None


def pending_inputs(wh: Warehouse, providers: list[str], *, limit: int = 2000
                   ) -> list[PendingInput]:
    """Finished batches of ``providers`` whose input file is not read yet, newest first."""
    if not providers:
        return []
    return [PendingInput(*r) for r in wh.query(
        sql.read("inputs/pending.sql"), {"providers": providers, "limit": limit})]  # type: ignore[arg-type]


def store_inputs(wh: Warehouse, provider: str, batch_id: str, parts: list[str], *,
                 state: str, lines: int, rejected: int, error: str | None,
                 status: int | None, at: datetime, run_id: str) -> None:
    """One batch's staged request parts (Parquet, rows with run_id) and its state, in one
    transaction; a batch settled without lines passes no parts."""
    params = {"provider": provider, "batch_id": batch_id}
    with wh.transaction() as con:
        if parts:
            paths = ", ".join("'" + p.replace("'", "''") + "'" for p in parts)
            con.execute("CREATE OR REPLACE TEMP VIEW incoming_requests AS SELECT * FROM "
                        f"read_parquet([{paths}])")
            for stmt in sql.statements(sql.read("inputs/load.sql")):
                con.execute(stmt, params if "$" in stmt else None)
        con.execute(sql.read("inputs/state.sql"), {
            **params, "state": state, "lines": lines, "rejected": rejected, "error": error,
            "status": status, "at": at, "run_id": run_id})
