"""Syncs of what gateways send in the wild (simulator/wild.py): five providers at once, error
arrays, raw payloads, provider nulls, and the odd object the typed path cannot take. Over real
HTTP into real DuckDB files; the loader's group commit across providers, tested directly."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from batchlake.common import DatabaseLocked
from batchlake.pipeline import sync
from batchlake.simulator import SimGateway
from batchlake.transforms import decode_page, flatten_records
from batchlake.warehouse import Warehouse, load
from batchlake.warehouse import db as db_mod
from batchlake.warehouse.db import SYNC_ROW_GROUP_SIZE
from tests.conftest import rows, run_cli, settings_for
from tests.expect import assert_keys_unique, compare_row, stored

AS_OF = datetime(2026, 12, 3, tzinfo=UTC)


def wild_gateway(n: int = 1500) -> SimGateway:
    gw = SimGateway(n, seed=13, wild=True, metadata_keys=8)
    plans = gw.by_provider
    # One object no row can hold (a timestamp before 1970) and one with a field this version
    # does not know: their pages leave the typed path for the exact one.
    plans["anthropic"][3].overrides["created_at"] = -5
    plans["gemini"][7].overrides["labels"] = {"tier": "gold"}
    return gw


@pytest.fixture
def wild() -> Any:
    gw = wild_gateway()
    gw.start()
    yield gw
    gw.stop()


def test_a_wild_sync_stores_every_object_once_or_rejects_it_with_a_reason(
        wild: SimGateway, db_path: str) -> None:
    # Small parts and transactions: many group commits, each mixing providers.
    settings = settings_for(wild, db_path, page_limit=50, flatten_size=120, chunk_size=400,
                            results=False)  # batch objects here; results: test_results.py
    rep = sync(settings)
    assert [r.status for r in rep.results] == ["ok"] * 5
    assert_keys_unique(db_path)
    bad = wild.by_provider["anthropic"][3].id
    expected = {(p, o["id"]): o for p in wild.providers for o in wild.truth(p)}
    table = stored(db_path)
    assert set(table) == set(expected) - {("anthropic", bad)}
    for key, row in table.items():
        assert not compare_row(expected[key], row), key
    reason = rows(db_path, "SELECT provider, batch_id, reason FROM rejects")
    assert reason == [("anthropic", bad, "created_at: negative timestamp -5")]
    extras = rows(db_path, "SELECT extras FROM batches WHERE batch_id = ?",
                  [wild.by_provider["gemini"][7].id])[0][0]
    assert orjson.loads(extras)["labels"] == {"tier": "gold"}
    # Per provider, what was fetched is what was stored plus what was refused.
    runs = rows(db_path, "SELECT provider, fetched, inserted, rejected FROM sync_runs")
    for provider, fetched, inserted, rejected in runs:
        assert fetched == len(wild.truth(provider)) == inserted + rejected, provider
        assert inserted == sum(1 for p, _ in table if p == provider)
    errors = rows(db_path, "SELECT count(*), count(DISTINCT batch_id) FROM batch_errors")[0]
    assert errors[0] == sum(len((o.get("errors") or {}).get("data") or [])
                            for k, o in expected.items() if k in table)
    # Re-running changes nothing and doubles nothing.
    again = sync(settings, full_refresh=True)
    assert sum(r.counts.inserted + r.counts.updated for r in again.results) == 0
    assert_keys_unique(db_path)
    assert rows(db_path, "SELECT count(*) FROM rejects")[0][0] == 2  # refused again, logged


def test_the_sync_writes_small_row_groups_that_plain_duckdb_reads(
        wild: SimGateway, db_path: str) -> None:
    sync(settings_for(wild, db_path, providers=("openai",), results=False))
    con = duckdb.connect(db_path, read_only=True)
    try:
        groups = con.execute("SELECT max(count) FROM pragma_storage_info('batches') "
                             "WHERE column_id = 0").fetchall()[0][0]
        n = con.execute("SELECT count(*) FROM batches").fetchall()[0][0]
        days = con.execute("SELECT sum(batches) FROM v_daily_summary").fetchall()[0][0]
    finally:
        con.close()
    assert n == days == len(wild.truth("openai"))
    assert groups <= SYNC_ROW_GROUP_SIZE


def test_the_cli_syncs_a_wild_gateway(wild: SimGateway, tmp_path: Path) -> None:
    db = str(tmp_path / "wild.duckdb")
    res = run_cli("sync", "--base-url", wild.base_url, "--db", db, "--no-results")
    assert res.returncode == 0, res.stderr
    total = sum(len(wild.truth(p)) for p in wild.providers)
    assert rows(db, "SELECT count(*) FROM batches")[0][0] == total - 1
    assert rows(db, "SELECT count(*) FROM rejects")[0][0] == 1


def _flat(gw: SimGateway, provider: str, start: int, n: int) -> Any:
    objs = gw.truth(provider)[start:start + n]
    records = decode_page(orjson.dumps({"data": objs})).data
    return flatten_records(records, provider, as_of=AS_OF)


def test_the_loader_merges_what_waits_in_one_group_and_counts_per_provider(
        tmp_path: Path) -> None:
    gw = SimGateway(400, seed=2, wild=True)
    with Warehouse(str(tmp_path / "g.duckdb"), group_rows=10_000) as wh:
        # fewer than a group: the three loads wait until the loader is asked to merge them
        a1 = wh.load_staged_async([wh.stage_chunk(_flat(gw, "openai", 0, 30))],
                                  run_id="r", observed_at=AS_OF, now=False)
        b = wh.load_staged_async([wh.stage_chunk(_flat(gw, "azure", 0, 20))],
                                 run_id="r", observed_at=AS_OF, now=False)
        a2 = wh.load_staged_async([wh.stage_chunk(_flat(gw, "openai", 20, 30))],
                                  run_id="r", observed_at=AS_OF, now=False)
        wh.merge_waiting_now()
        counts = [f.result(timeout=60) for f in (a1, b, a2)]
        # openai's 50 distinct batches (10 in both parts) in one transaction: the first of
        # its loads carries them; the later part's versions won.
        assert (counts[0].inserted, counts[1].inserted, counts[2].inserted) == (50, 20, 0)
        assert wh.query("SELECT provider, count(*) FROM batches GROUP BY ALL ORDER BY 1") == [
            ("azure", 20), ("openai", 50)]


def test_a_failed_group_retries_each_load_alone_so_the_others_land(tmp_path: Path) -> None:
    gw = SimGateway(400, seed=2, wild=True)
    with Warehouse(str(tmp_path / "g.duckdb"), group_rows=10_000) as wh:
        good = wh.load_staged_async([wh.stage_chunk(_flat(gw, "openai", 0, 30))],
                                    run_id="r", observed_at=AS_OF, now=False)
        broken = wh.stage_chunk(_flat(gw, "azure", 0, 20))
        Path(broken.files["batches"]).unlink()  # its part cannot be read
        bad = wh.load_staged_async([broken], run_id="r", observed_at=AS_OF, now=False)
        wh.merge_waiting_now()  # one group: it fails, and each load is tried alone
        assert good.result(timeout=60).inserted == 30
        with pytest.raises(duckdb.IOException, match=r"No files found"):
            bad.result(timeout=60)
        assert wh.query("SELECT provider, count(*) FROM batches GROUP BY ALL") == [
            ("openai", 30)]


def _table_rows(db: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every stored row of the batch tables, run times and run ids left out."""
    out = {}
    for table, drop in (("batches", "first_seen_at, last_seen_at, last_changed_at, "
                                     "last_run_id"),
                        ("batch_snapshots", "observed_at, run_id"),
                        ("batch_errors", None), ("batch_metadata", None)):
        cols = f"* EXCLUDE ({drop})" if drop else "*"
        out[table] = rows(db, f"SELECT {cols} FROM {table} ORDER BY ALL")
    return out


def test_a_sync_that_reattaches_its_file_stores_exactly_what_one_that_does_not_stores(
        wild: SimGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A big sync detaches and attaches its file every REATTACH_ROWS batches (memory, see
    # warehouse/db.py); here every ~200, so a sync of 1,500 does it several times.
    reattached = []
    real = db_mod.reattach
    monkeypatch.setattr(db_mod, "reattach",
                        lambda *a, **k: (reattached.append(1), real(*a, **k)))
    dbs = {}
    for name, every in (("with", 200), ("without", 0)):
        monkeypatch.setattr(load, "REATTACH_ROWS", every)
        dbs[name] = str(tmp_path / f"{name}.duckdb")
        settings = settings_for(wild, dbs[name], page_limit=50, flatten_size=120,
                                chunk_size=400, results=False)
        assert [r.status for r in sync(settings, clock=AS_OF).results] == ["ok"] * 5
        if every:
            assert len(reattached) >= 2
            again = sync(settings, full_refresh=True, clock=AS_OF)  # after re-attaching too
            assert sum(r.counts.inserted + r.counts.updated for r in again.results) == 0
        else:
            sync(settings, full_refresh=True, clock=AS_OF)
    assert_keys_unique(dbs["with"])
    assert _table_rows(dbs["with"]) == _table_rows(dbs["without"])


_HOLD = """
import duckdb, sys, time
con = duckdb.connect(sys.argv[1], read_only=True)
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def _reader_slips_in(monkeypatch: pytest.MonkeyPatch, db: str, hold_s: float) -> list[float]:
    """Make another process open the file read-only in the instant a re-attach leaves it
    free (as a reader's query may): returns when the re-attach got the file back."""
    real, took = db_mod.attach_file, []

    def attach_after_a_reader(con: Any, path: str, *args: Any) -> None:
        if not took:
            reader = subprocess.Popen([sys.executable, "-c", _HOLD, path, str(hold_s)],
                                      stdout=subprocess.PIPE, text=True)
            assert reader.stdout is not None and reader.stdout.readline() == "holding\n"
            took.append(time.monotonic())
        real(con, path, *args)

    monkeypatch.setattr(db_mod, "attach_file", attach_after_a_reader)
    return took


def _load(wh: Warehouse, flat: Any) -> Any:
    """A part through the loader, as a sync hands it over."""
    return wh.load_staged_async([wh.stage_chunk(flat)], run_id="r",
                                observed_at=AS_OF).result(timeout=60)


def test_a_reattach_waits_for_a_reader_that_took_the_file_and_loses_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gw = SimGateway(400, seed=2, wild=True)
    db = str(tmp_path / "r.duckdb")
    with Warehouse(db, group_rows=10_000) as wh:
        wh.reattach_rows = 1  # before every merge after the first
        _load(wh, _flat(gw, "openai", 0, 30))
        took = _reader_slips_in(monkeypatch, db, hold_s=1.0)
        _load(wh, _flat(gw, "openai", 30, 30))
        assert took and time.monotonic() - took[0] >= 1.0  # it waited for the reader
        assert wh.query("SELECT count(*) FROM batches") == [(60,)]


def test_a_reattach_that_cannot_get_the_file_back_says_so_and_keeps_what_was_committed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gw = SimGateway(400, seed=2, wild=True)
    db = str(tmp_path / "r.duckdb")
    with Warehouse(db, group_rows=10_000, lock_timeout_s=0.3) as wh:
        wh.reattach_rows = 1
        _load(wh, _flat(gw, "openai", 0, 30))
        _reader_slips_in(monkeypatch, db, hold_s=3.0)
        with pytest.raises(DatabaseLocked, match=r"in use by another process.*--lock-timeout"):
            _load(wh, _flat(gw, "openai", 30, 30))
    deadline = time.monotonic() + 30
    while True:  # the reader lets go of the file after its 3 s
        try:
            assert rows(db, "SELECT count(*) FROM batches") == [(30,)]
            break
        except duckdb.IOException:
            assert time.monotonic() < deadline
            time.sleep(0.1)
