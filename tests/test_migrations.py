"""One schema definition drives the DDL; an older file gains new columns without losing data."""

from __future__ import annotations

from typing import Any

import duckdb

from batchlake import sql
from batchlake.pipeline import sync
from batchlake.transforms import TABLES
from batchlake.warehouse import Warehouse
from tests.conftest import rows, settings_for


def test_tables_match_the_schema_definition(db_path: str) -> None:
    Warehouse(db_path).close()
    for t in TABLES:
        cols = [r[0] for r in rows(db_path, "SELECT column_name FROM information_schema.columns "
                                            "WHERE table_name = ? ORDER BY ordinal_position",
                                   [t.name])]
        assert cols == t.column_names(), t.name
    numbers = [int(name.split("_", 1)[0]) for name in sql.listing("migrations")]
    assert rows(db_path, "SELECT version FROM schema_migrations ORDER BY 1") == \
        [(n,) for n in numbers]


def test_older_file_gains_missing_columns_and_keeps_its_rows(gateway: Any, db_path: str
                                                              ) -> None:
    sync(settings_for(gateway, db_path))
    n = rows(db_path, "SELECT count(*) FROM batches")[0][0]
    con = duckdb.connect(db_path)
    con.execute("ALTER TABLE batches DROP COLUMN cache_hit_latency")  # as an older release had
    con.execute("UPDATE schema_state SET fingerprint = 'older release'")
    con.close()
    Warehouse(db_path).close()
    assert rows(db_path, "SELECT count(*), count(cache_hit_latency) FROM batches") == [(n, 0)]
    rep = sync(settings_for(gateway, db_path), full_refresh=True)
    assert all(r.status == "ok" for r in rep.results)


def test_file_from_before_row_key_finds_its_batches_again(gateway: Any, db_path: str) -> None:
    """A file written before the merge's lookup key existed gains the key for every stored
    batch, so the next sync finds them all (no doubled rows, no false 'new')."""
    sync(settings_for(gateway, db_path))
    n = rows(db_path, "SELECT count(*) FROM batches")[0][0]
    con = duckdb.connect(db_path)
    con.execute("ALTER TABLE batches DROP COLUMN row_key")
    con.execute("DELETE FROM schema_migrations WHERE version >= 2")
    con.execute("UPDATE schema_state SET fingerprint = 'before row_key'")
    con.close()
    rep = sync(settings_for(gateway, db_path), full_refresh=True)
    assert sum(r.counts.inserted for r in rep.results) == 0
    assert sum(r.counts.unchanged for r in rep.results) == n
    assert rows(db_path, "SELECT count(*), count(DISTINCT (provider, batch_id)), count(row_key) "
                         "FROM batches") == [(n, n, n)]


def test_a_migration_numbered_below_one_applied_still_runs(db_path: str) -> None:
    """Branches merge migrations in any order (and numbers may skip): a file not yet
    recorded runs, whatever the highest version applied."""
    Warehouse(db_path).close()
    con = duckdb.connect(db_path)
    con.execute("DROP TABLE price_tiers")  # as if 004 arrived after the later ones ran
    con.execute("DELETE FROM schema_migrations WHERE version = 4")
    con.execute("UPDATE schema_state SET fingerprint = 'a merge brought 004'")
    con.close()
    Warehouse(db_path).close()
    assert rows(db_path, "SELECT count(*) FROM schema_migrations WHERE version = 4") == [(1,)]
    assert rows(db_path, "SELECT count(*) FROM price_tiers") == [(0,)]
