"""The Parquet lake: hive-partitioned, zstd, read back by DuckDB equal to the tables, and
incremental (untouched partitions are not rewritten)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from batchlake.pipeline import sync
from tests.cli_runner import invoke
from tests.conftest import run_cli, settings_for


def lake_equals_tables(db: str, lake: Path) -> None:
    con = duckdb.connect(db, read_only=True)
    try:
        for table in ("batches", "batch_snapshots"):
            cols = [r[0] for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ?",
                [table]).fetchall()]
            sel = ", ".join(f'"{c}"' for c in cols)
            src = con.execute(f"SELECT {sel} FROM {table} ORDER BY ALL").fetchall()
            back = con.execute(
                f"SELECT {sel} FROM read_parquet('{lake / table}/**/*.parquet', "
                "hive_partitioning = true, hive_types_autocast = false) ORDER BY ALL").fetchall()
            assert len(src) == len(back), table
            for a, b in zip(src, back, strict=True):
                diff = [(c, x, y) for c, x, y in zip(cols, a, b, strict=True) if x != y]
                assert not diff, (table, diff[:3])
        for table in ("batch_errors", "batch_metadata", "sync_runs"):
            n = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
            m = con.execute(f"SELECT count(*) FROM '{lake / table}/data.parquet'").fetchall()
            assert m[0][0] == n, table
    finally:
        con.close()


def test_export_is_partitioned_readable_and_incremental(make_gateway: Any, db_path: str,
                                                        tmp_path: Path) -> None:
    gw = make_gateway(600, seed=6, future_share=0.1, history_s=8 * 86400)
    s = settings_for(gw, db_path)
    sync(s)
    lake = tmp_path / "lake"
    res = run_cli("export", "parquet", str(lake), "--db", db_path)
    assert res.returncode == 0, res.stderr
    parts = sorted(p.relative_to(lake / "batches") for p in (lake / "batches").rglob("*.parquet"))
    assert parts and all(str(p).startswith("provider=") and "created_date=" in str(p)
                         for p in parts)
    lake_equals_tables(db_path, lake)
    with duckdb.connect() as con:
        codec = con.execute(f"SELECT DISTINCT compression FROM parquet_metadata("
                            f"'{lake}/batches/**/*.parquet')").fetchall()
    assert codec == [("ZSTD",)]
    mtimes = {p: p.stat().st_mtime_ns for p in (lake / "batches").rglob("*.parquet")}
    gw.advance(6 * 3600)
    rep = sync(s)
    changed = sum(r.counts.inserted + r.counts.updated for r in rep.results)
    assert changed > 0
    res = invoke("export", "parquet", str(lake), "--db", db_path)  # the first was a process
    assert res.returncode == 0, res.stderr
    lake_equals_tables(db_path, lake)
    after = {p: p.stat().st_mtime_ns for p in (lake / "batches").rglob("*.parquet")}
    untouched = [p for p in mtimes if p in after and after[p] == mtimes[p]]
    assert untouched, "an incremental export should leave unchanged partitions alone"
    assert len(untouched) < len(after)
