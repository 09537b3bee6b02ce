"""The batch merge: its plan compiled from ``sql/append`` and ``sql/merge`` (rendered from the
schema once), and run over a load group's ``incoming_*`` views inside the caller's
transaction. Every statement is an idempotent merge, so a re-run converges."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from batchlake import sql
from batchlake.transforms import BATCH_SNAPSHOTS, BATCHES, ROW_KEY_SQL, STAGED_BATCH_COLUMNS
from batchlake.warehouse.db import quote_name


@dataclass
class ChunkCounts:
    """What a load changed: batches inserted, updated and unchanged, rejects recorded,
    snapshots appended."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    snapshots: int = 0

    def add(self, other: ChunkCounts) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.rejected += other.rejected
        self.snapshots += other.snapshots


def _hash_input(name: str) -> str:
    # chr(0) stands for NULL so that NULL and '' hash differently.
    return f"coalesce(CAST(i.{quote_name(name)} AS VARCHAR), chr(0))"


def merge_values() -> dict[str, str]:
    """What the merge's .sql placeholders are rendered with, from transforms/schema.py."""
    staged = list(STAGED_BATCH_COLUMNS)
    tracked = [c.name for c in BATCHES.columns
               if c.tracked and c.name in staged and c.name not in ("provider", "batch_id")]
    snap = [c.name for c in BATCH_SNAPSHOTS.columns
            if c.name not in ("provider", "batch_id", "observed_at", "run_id")]
    return {
        # One definition for both plans: an appended batch must hash as the general merge
        # hashes it when it is read again, or it would read as changed.
        "content_hash": "md5(concat_ws(chr(31), "
                        + ", ".join(_hash_input(c) for c in tracked) + "))",
        "row_key": ROW_KEY_SQL,
        "snapshot_cols": ", ".join(quote_name(c) for c in snap),
        "snapshot_cols_s": ", ".join(f"s.{quote_name(c)}" for c in snap),
        "staged_cols": ", ".join(quote_name(c) for c in staged),
        "staged_cols_s": ", ".join(f"s.{quote_name(c)}" for c in staged),
    }


@dataclass(frozen=True)
class MergeStatement:
    """One statement of ``sql/merge``: it runs when any of the chunk's counts named in its
    ``-- when:`` line is non-zero (always, without one)."""

    text: str
    when: frozenset[str]

    def applies(self, counts: ChunkCounts) -> bool:
        return not self.when or any(getattr(counts, name) for name in self.when)

    def params(self, observed_at: datetime, run_id: str) -> list[Any]:
        return ([observed_at, run_id] if "$2" in self.text
                else [observed_at] if "$1" in self.text else [])


def _statement(text: str) -> MergeStatement:
    when = [ln.split(":", 1)[1] for ln in text.splitlines() if ln.startswith("-- when:")]
    names = frozenset(n.strip() for part in when for n in part.split(","))
    unknown = names - {"inserted", "updated", "unchanged"}
    if unknown:
        raise ValueError(f"unknown count in a merge statement's '-- when:': {sorted(unknown)}")
    return MergeStatement(text, names)


@dataclass(frozen=True)
class MergePlan:
    """A load group's merge. First ``sql/append``: key the group (01) and probe it (02); a
    group of new batches, each once, is appended as read (03). Any other group takes the
    general merge, ``sql/merge``: stage it (01), count what is new/changed/unchanged (02),
    then run the statements those counts call for (03-05)."""

    keys: list[MergeStatement]
    probe_query: str
    append: list[MergeStatement]
    stage: list[MergeStatement]
    counts_query: str
    apply: list[MergeStatement]


_PLAN: MergePlan | None = None


def merge_plan() -> MergePlan:
    """The plan, compiled on first use: every file of ``sql/merge`` numbered past 02 is a
    statement to apply."""
    global _PLAN
    if _PLAN is None:
        values = merge_values()

        def parse(name: str) -> list[MergeStatement]:
            return [_statement(t) for t in sql.statements(sql.render(sql.read(name), values))]

        names = sql.listing("merge")
        _PLAN = MergePlan(parse("append/01_keys.sql"), sql.read("append/02_probe.sql"),
                          parse("append/03_append.sql"),
                          parse("merge/01_stage.sql"), sql.read("merge/02_counts.sql"),
                          [st for n in names if n[:2] > "02" for st in parse(f"merge/{n}")])
    return _PLAN


def merge_incoming(con: duckdb.DuckDBPyConnection, observed_at: datetime, run_id: str
                   ) -> dict[str, ChunkCounts]:
    """Run the merge plan over the incoming_* views, inside the caller's transaction; return
    the changes per provider."""
    plan = merge_plan()

    def run(statements: list[MergeStatement]) -> None:
        for stmt in statements:
            con.execute(stmt.text, stmt.params(observed_at, run_id))

    run(plan.keys)
    # fetchall, not fetchone: DuckDB 2.0 refuses the next statement while a result is
    # unfinished.
    probe = con.execute(plan.probe_query).fetchall()
    if not any(repeated or stored for _, _, repeated, stored in probe):
        run(plan.append)
        return {p: ChunkCounts(inserted=int(n), snapshots=int(n)) for p, n, _, _ in probe}
    run(plan.stage)
    by_provider: dict[str, ChunkCounts] = {}
    counts = ChunkCounts()
    for provider, *row in con.execute(plan.counts_query).fetchall():
        c = ChunkCounts(*(int(v) for v in row))
        c.snapshots = c.inserted + c.updated
        by_provider[provider] = c
        counts.add(c)
    run([stmt for stmt in plan.apply if stmt.applies(counts)])
    return by_provider
