"""Export the tables as a hive-partitioned, zstd Parquet dataset that DuckDB, Spark or Trino
read directly. Incremental: after the first export only the partitions holding rows that
changed since the last export are rewritten; small tables are rewritten whole."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from batchlake.common.errors import ConfigError
from batchlake.warehouse.db import connect

# Partitioned tables: the column that says a row changed, and how to derive created_date.
_PARTITIONED = {
    # last_seen_at moves when a sync sees a batch change or still open, last_changed_at only
    # on change; the lake mirrors both, so a partition is rewritten when either moved.
    "batches": ("last_seen_at", "CAST(created_at AS DATE)"),
    "batch_snapshots": ("observed_at", "CAST(observed_at AS DATE)"),
}
_WHOLE = ("batch_errors", "batch_metadata", "sync_runs", "rejects", "sync_state")
_ALLOWED_PARTS = {"provider", "created_date"}


def _q(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def export_parquet(db_path: str, out_dir: str,
                   partition_by: tuple[str, ...] = ("provider", "created_date")) -> int:
    """Write/refresh the dataset under ``out_dir``; return the number of files written."""
    bad = set(partition_by) - _ALLOWED_PARTS
    if bad or not partition_by:
        raise ConfigError(f"cannot partition by {', '.join(sorted(bad)) or 'nothing'}; "
                          "use any of provider,created_date")
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    con = connect(db_path)
    try:
        con.execute("CREATE TABLE IF NOT EXISTS export_state (target VARCHAR PRIMARY KEY, "
                    "exported_at TIMESTAMPTZ NOT NULL)")
        target = str(root.resolve())
        prev = con.execute("SELECT exported_at FROM export_state WHERE target = ?",
                           [target]).fetchall()
        since = prev[0][0] if prev else None
        started = datetime.now(UTC)
        written = 0
        for table, (changed_col, date_expr) in _PARTITIONED.items():
            written += _export_partitioned(con, table, root / table, partition_by,
                                           changed_col, date_expr, since)
        for table in _WHOLE:
            path = root / table / "data.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            con.execute(f"COPY (SELECT * FROM {table}) TO {_q(path)} "
                        "(FORMAT parquet, COMPRESSION zstd)")
            written += 1
        con.execute("INSERT OR REPLACE INTO export_state VALUES (?, ?)", [target, started])
    finally:
        con.close()
    return written


def _export_partitioned(con: duckdb.DuckDBPyConnection, table: str, out: Path,
                        parts: tuple[str, ...], changed_col: str, date_expr: str,
                        since: datetime | None) -> int:
    select = f"SELECT *, {date_expr} AS created_date FROM {table}"
    cols = ", ".join(parts)
    if since is None or not out.exists():
        if out.exists():
            shutil.rmtree(out)
        con.execute(f"COPY ({select}) TO {_q(out)} (FORMAT parquet, COMPRESSION zstd, "
                    f"PARTITION_BY ({cols}), FILENAME_PATTERN 'data_{{i}}')")
        return len(list(out.rglob("*.parquet")))
    changed = con.execute(
        f"SELECT DISTINCT {cols} FROM ({select}) WHERE {changed_col} >= ?", [since]).fetchall()
    # Like PARTITION_BY: the partition columns live in the path, not in the file.
    keep = ", ".join(f'"{c}"' for c in [*_columns(con, table), "created_date"]
                     if c not in parts)
    for values in changed:
        where = " AND ".join(f"{c} IS NOT DISTINCT FROM ?" for c in parts)
        part_dir = out.joinpath(*(f"{c}={'NULL' if v is None else v}"
                                  for c, v in zip(parts, values, strict=True)))
        if part_dir.exists():
            shutil.rmtree(part_dir)
        part_dir.mkdir(parents=True)
        con.execute(f"COPY (SELECT {keep} FROM ({select}) WHERE {where}) TO "
                    f"{_q(part_dir / 'data_0.parquet')} (FORMAT parquet, COMPRESSION zstd)",
                    list(values))
    return len(changed)


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    rows = con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                       "ORDER BY ordinal_position", [table]).fetchall()
    return [r[0] for r in rows]
