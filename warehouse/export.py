"""Export the tables as a hive-partitioned, zstd Parquet dataset that DuckDB, Spark or Trino
read directly. Incremental: after the first export only the partitions holding rows that
changed since the last export are rewritten; small tables are rewritten whole.

The export only reads the database (it never creates one, and never holds it longer than the
export): what it last exported is recorded in the dataset itself, ``_batchlake_export.json``."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from batchlake.common import ConfigError, DatabaseError
from batchlake.warehouse.db import OnWait, quote_name, reading

STATE_FILE = "_batchlake_export.json"

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


def _last_export(root: Path, db_path: str, partition_by: tuple[str, ...]) -> datetime | None:
    """When this dataset was last exported from this database with these partitions."""
    try:
        state = json.loads((root / STATE_FILE).read_text(encoding="utf-8"))
        if state["db"] != str(Path(db_path).resolve()) or \
                state["partition_by"] != list(partition_by):
            return None  # another source or layout: export everything again
        return datetime.fromisoformat(state["exported_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _record_export(root: Path, db_path: str, partition_by: tuple[str, ...],
                   started: datetime) -> None:
    tmp = root / f".{STATE_FILE}.tmp"
    tmp.write_text(json.dumps({"db": str(Path(db_path).resolve()),
                               "partition_by": list(partition_by),
                               "exported_at": started.isoformat()}), encoding="utf-8")
    os.replace(tmp, root / STATE_FILE)


def export_parquet(db_path: str, out_dir: str,
                   partition_by: tuple[str, ...] = ("provider", "created_date"), *,
                   lock_timeout_s: float = 60.0, on_wait: OnWait | None = None) -> int:
    """Write/refresh the dataset under ``out_dir``; return the number of files written."""
    bad = set(partition_by) - _ALLOWED_PARTS
    if bad or not partition_by:
        raise ConfigError(f"cannot partition by {', '.join(sorted(bad)) or 'nothing'}; "
                          "use any of provider,created_date")
    root = Path(out_dir)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"export target {out_dir} is a file; pass a folder")
    with reading(db_path, lock_timeout_s=lock_timeout_s, on_wait=on_wait) as con:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"cannot create the export folder {out_dir} ({e.strerror}); "
                              "pass a writable folder") from None
        since = _last_export(root, db_path, partition_by)
        started = datetime.now(UTC)
        try:
            written = _export_all(con, root, partition_by, since)
        except duckdb.CatalogException:
            raise DatabaseError(f"{db_path} is not a batchlake database (no batches table); "
                                "pass the --db a sync wrote") from None
        _record_export(root, db_path, partition_by, started)
    return written


def _export_all(con: duckdb.DuckDBPyConnection, root: Path, partition_by: tuple[str, ...],
                since: datetime | None) -> int:
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
    keep = ", ".join(quote_name(c) for c in [*_columns(con, table), "created_date"]
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
