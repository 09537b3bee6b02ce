"""The loader's two plans: a group of new batches, each once, is appended as staged
(sql/append); any other group takes the general merge (sql/merge). Both must leave the same
tables, and the probe must send every group the append cannot decide to the merge."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from batchlake.simulator import SimGateway
from batchlake.transforms import decode_page, flatten_records
from batchlake.warehouse import ChunkCounts, Warehouse
from batchlake.warehouse import merge_plan as plan_module

AS_OF = datetime(2026, 12, 3, tzinfo=UTC)
LATER = datetime(2026, 12, 4, tzinfo=UTC)
TABLES = {
    "batches": "provider, batch_id",
    "batch_snapshots": "provider, batch_id, observed_at",
    "batch_errors": "provider, batch_id, idx",
    "batch_metadata": "provider, batch_id, key",
}


def flat(gw: SimGateway, provider: str, start: int, n: int) -> Any:
    objs = gw.truth(provider)[start:start + n]
    return flatten_records(decode_page(orjson.dumps({"data": objs})).data, provider,
                           as_of=AS_OF)


def load_group(wh: Warehouse, parts: list[Any], at: datetime = AS_OF) -> dict[str, ChunkCounts]:
    """One transaction over these parts: they wait for the loader (fewer than a group) until
    it is asked to merge them, then it takes them together. Counts per provider."""
    loads = [(p.batches.get_column("provider")[0],
              wh.load_staged_async([wh.stage_chunk(p)], run_id=f"r-{at:%d}", observed_at=at,
                                   now=False)) for p in parts]
    wh.merge_waiting_now()
    counts: dict[str, ChunkCounts] = {}
    for provider, future in loads:
        counts.setdefault(provider, ChunkCounts()).add(future.result(timeout=60))
    return counts


def plan_taken(wh: Warehouse) -> str:
    """Which plan the last group took: only the general merge stages a copy of the rows."""
    staged = wh.query("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'stage_batches'")
    return "merge" if staged[0][0] else "append"


def dump(wh: Warehouse) -> dict[str, list[tuple[Any, ...]]]:
    return {t: wh.query(f"SELECT * FROM {t} ORDER BY {key}") for t, key in TABLES.items()}


def wild_parts() -> list[Any]:
    # A fixed clock: the simulator's objects are dated from its clock (the wall clock by
    # default), so two gateways a second apart serve different timestamps.
    gw = SimGateway(900, seed=5, wild=True, metadata_keys=8, now=int(AS_OF.timestamp()))
    return [flat(gw, p, 0, 120) for p in ("openai", "anthropic", "gemini", "bedrock", "azure")]


def test_new_batches_are_appended_as_the_general_merge_writes_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts = wild_parts()
    assert sum(p.errors.height for p in parts) and sum(p.metadata.height for p in parts)
    with Warehouse(str(tmp_path / "append.duckdb")) as wh:
        counts = load_group(wh, parts)
        assert plan_taken(wh) == "append"
        appended = dump(wh)
    plan = plan_module.merge_plan()
    probe = "SELECT provider, count(*), 0, true FROM stage_keys GROUP BY provider"
    monkeypatch.setattr(plan_module, "merge_plan",
                        lambda: dataclasses.replace(plan, probe_query=probe))
    with Warehouse(str(tmp_path / "merge.duckdb")) as wh:
        merged_counts = load_group(wh, parts)
        assert plan_taken(wh) == "merge"
        merged = dump(wh)
    assert counts == merged_counts
    assert {p: (c.inserted, c.snapshots) for p, c in counts.items()} == {
        p.batches.get_column("provider")[0]: (p.batches.height, p.batches.height)
        for p in parts}
    for table in TABLES:
        assert appended[table] == merged[table], table
        assert appended[table], table


def test_a_group_with_a_repeated_batch_takes_the_merge_and_the_last_part_wins(
        tmp_path: Path) -> None:
    gw = SimGateway(200, seed=3, wild=True)
    first, second = flat(gw, "openai", 0, 30), flat(gw, "openai", 20, 30)
    # the later part's version of the ten batches in both differs
    second.batches = second.batches.with_columns(display_name=second.batches["batch_id"])
    with Warehouse(str(tmp_path / "g.duckdb")) as wh:
        counts = load_group(wh, [first, second])
        assert plan_taken(wh) == "merge"
        assert counts["openai"].inserted == 50
        repeated = second.batches["batch_id"][:10].to_list()
        names = dict(wh.query("SELECT batch_id, display_name FROM batches WHERE batch_id IN "
                              "(SELECT unnest(?))", [repeated]))
        assert names == {b: b for b in repeated}
        assert wh.query("SELECT count(*), count(DISTINCT batch_id) FROM batches") == [(50, 50)]


def test_a_group_with_a_stored_batch_takes_the_merge_and_counts_each_change(
        tmp_path: Path) -> None:
    gw = SimGateway(200, seed=4, wild=True)
    with Warehouse(str(tmp_path / "g.duckdb")) as wh:
        load_group(wh, [flat(gw, "openai", 0, 20)])
        assert plan_taken(wh) == "append"
        again = flat(gw, "openai", 10, 20)  # ten stored, ten new
        changed = again.batches["batch_id"][0]
        again.batches = again.batches.with_columns(
            display_name=(again.batches["batch_id"] == changed).replace_strict(
                {True: "renamed", False: None}, default=None))
        old = dict(wh.query("SELECT batch_id, display_name FROM batches"))
        counts = load_group(wh, [again], at=LATER)["openai"]
        assert plan_taken(wh) == "merge"
        # each stored one whose name differs now is a change; the new ten are inserted
        stored_ids = again.batches["batch_id"][:10].to_list()
        differ = sum(old[b] != ("renamed" if b == changed else None) for b in stored_ids)
        assert (counts.inserted, counts.updated, counts.unchanged) == (10, differ, 10 - differ)
        assert wh.query("SELECT count(*) FROM batches") == [(30,)]
        assert wh.query("SELECT count(*) FROM batch_snapshots") == [(30 + differ,)]


def test_an_append_followed_by_the_same_objects_changes_nothing(tmp_path: Path) -> None:
    parts = wild_parts()
    with Warehouse(str(tmp_path / "g.duckdb")) as wh:
        load_group(wh, parts)
        before = dump(wh)
        counts = load_group(wh, parts, at=LATER)  # the same frames, staged again
        assert plan_taken(wh) == "merge"
        assert sum(c.updated + c.inserted for c in counts.values()) == 0
        after = dump(wh)
        assert after["batch_snapshots"] == before["batch_snapshots"]
        assert after["batch_errors"] == before["batch_errors"]
        assert after["batch_metadata"] == before["batch_metadata"]


def test_an_append_after_rewritten_rows_snapshots_exactly_its_own_batches(
        tmp_path: Path) -> None:
    # The append reads its snapshots back by rowid (past the last one stored): rows the
    # general merge deleted and wrote again, and a checkpoint between, must not confuse it.
    gw = SimGateway(300, seed=6, wild=True)
    with Warehouse(str(tmp_path / "g.duckdb")) as wh:
        load_group(wh, [flat(gw, "openai", 0, 40)])
        renamed = flat(gw, "openai", 0, 40)
        renamed.batches = renamed.batches.with_columns(display_name=renamed.batches["batch_id"])
        assert load_group(wh, [renamed], at=LATER)["openai"].updated == 40
        wh.query("CHECKPOINT")
        wh.query("DROP TABLE stage_batches")  # the merge's staged copy: plan_taken looks
        counts = load_group(wh, [flat(gw, "openai", 40, 30), flat(gw, "anthropic", 0, 25)],
                            at=LATER)
        assert plan_taken(wh) == "append"
        assert {p: c.snapshots for p, c in counts.items()} == {"openai": 30, "anthropic": 25}
        per_batch = wh.query(
            "SELECT n, count(*) FROM (SELECT provider, batch_id, count(*) AS n "
            "FROM batch_snapshots GROUP BY ALL) GROUP BY n ORDER BY n")
        assert per_batch == [(1, 55), (2, 40)]  # the renamed 40 twice, the new 55 once
        assert wh.query("SELECT count(*) FROM batch_snapshots s JOIN batches b USING "
                        "(provider, batch_id) WHERE s.content_hash IS DISTINCT FROM "
                        "b.content_hash AND s.observed_at = b.last_changed_at") == [(0,)]
