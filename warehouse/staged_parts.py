"""Flattened chunks staged as Parquet files: written by the thread that flattened them (polars
writes them in Rust, off the loader's path), read back by the merge with DuckDB's own Parquet
reader as the ``incoming_*`` views: never row by row, and no Python object for DuckDB to call
back into while it scans."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from batchlake.transforms import FlatFrames, constant_column

# Each staged frame carries its part number, so that a transaction over several parts keeps
# the last occurrence of a batch (and that occurrence's children), as one flattened chunk does.
# sql/merge/01_stage.sql and 05_children.sql read it by this name.
PART_COLUMN = "part"
STAGED_FRAMES = ("batches", "errors", "metadata")


@dataclass
class StagedChunk:
    """One flattened chunk written to Parquet, waiting for its load transaction. (Not handed
    to DuckDB as Arrow: that was no faster and held more memory, see docs/scaling.md.)"""

    files: dict[str, str]  # frame name -> Parquet path
    batches: int
    rejects: list[dict[str, Any]] = field(default_factory=list)
    providers: tuple[str, ...] = ()  # whose rows it holds

    def remove(self) -> None:
        for path in self.files.values():
            Path(path).unlink(missing_ok=True)


def write_chunk(flat: FlatFrames, stage_dir: str, part: int) -> StagedChunk:
    """Write a flattened chunk's frames to ``stage_dir`` as part number ``part`` (a later
    part wins over an earlier one for the same batch)."""
    files = {}
    for name in STAGED_FRAMES:
        df: pl.DataFrame = getattr(flat, name)
        path = str(Path(stage_dir) / f"{name}-{part:06d}.parquet")
        # Uncompressed: the file lives for one merge, on local disk, and compressing it
        # cost more wall than it saved (docs/scaling.md).
        df.hstack([constant_column(PART_COLUMN, part, df.height, pl.Int64)]).write_parquet(
            path, compression="uncompressed", statistics=False)
        files[name] = path
    providers = tuple(sorted(set(flat.batches.get_column("provider").to_list())))
    return StagedChunk(files, flat.batches.height, list(flat.rejects), providers)


def read_as_incoming(con: duckdb.DuckDBPyConnection, staged: list[StagedChunk]) -> None:
    """The staged chunks' frames as the views the merge reads: incoming_batches,
    incoming_errors, incoming_metadata."""
    for name in STAGED_FRAMES:
        paths = ", ".join("'" + chunk.files[name].replace("'", "''") + "'" for chunk in staged)
        con.execute(f"CREATE OR REPLACE TEMP VIEW incoming_{name} AS "
                    f"SELECT * FROM read_parquet([{paths}])")
