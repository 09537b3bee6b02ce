"""The frames one chunk of batch objects becomes, assembled from checked columns; both
flattening paths (``flatten.py``, ``typed.py``) end here. No I/O.

The columns arrive as Python lists of checked values (unix seconds as integers, 0 for
Go's "unset"); one lazy polars plan types them and adds every derived column
(``derive.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from batchlake.transforms.columns import constant_column
from batchlake.transforms.derive import derive_batch_columns
from batchlake.transforms.schema import (
    ALWAYS_SENT_COUNTS,
    BATCH_ERRORS,
    BATCH_METADATA,
    COUNT_FIELDS,
    SOURCED_BATCH_COLUMNS,
    STAGED_BATCH_COLUMNS,
    Column,
)


@dataclass
class FlatFrames:
    """What one chunk of objects becomes: the frames the loader merges."""

    batches: pl.DataFrame
    errors: pl.DataFrame
    metadata: pl.DataFrame
    rejects: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0
    newest_created_at: int | None = None
    oldest_created_at: int | None = None

    def ids_among(self, candidates: Iterable[str]) -> list[str]:
        """The batch ids of this chunk that are among ``candidates``, in the chunk's order."""
        wanted = set(candidates)  # a set, not is_in: that runs a query plan per chunk
        return [i for i in self.batches.get_column("batch_id").to_list() if i in wanted]


def frames(cols: dict[str, list[Any]], rejected: set[int], provider: str, as_of: datetime, *,
           errors: list[dict[str, Any]] | dict[str, list[Any]],
           metadata: tuple[list[str], list[str], list[str]],
           rejects: list[dict[str, Any]], duplicates: int) -> FlatFrames:
    """The chunk's frames from its checked columns (either path's; the rows at ``rejected``
    are left out), its error child rows (row dicts or columns), its metadata child rows
    (batch ids, keys, values), rejects and the count of duplicates dropped."""
    batches = _batches_frame(cols, rejected, provider, as_of)
    created = batches.get_column("created_at")
    return FlatFrames(
        batches=batches,
        errors=_child_frame(errors, provider, BATCH_ERRORS.columns),
        metadata=_metadata_frame(*metadata, provider),
        rejects=rejects,
        duplicates=duplicates,
        newest_created_at=_epoch(created.max()),
        oldest_created_at=_epoch(created.min()),
    )


def _epoch(v: Any) -> int | None:
    return int(v.timestamp()) if isinstance(v, datetime) else None


_ROW_COLUMNS: list[tuple[str, pl.DataType]] = [
    (c.name, pl.Int64() if c.kind == "ts" else c.polars_type)
    for c in SOURCED_BATCH_COLUMNS
    if c.name != "provider"
] + [
    ("errors_count", pl.Int64()),
    ("errors_json", pl.String()),
    ("raw_request", pl.String()),
    ("raw_response", pl.String()),
    ("extras", pl.String()),
]
_TS_COLUMNS = [c.name for c in SOURCED_BATCH_COLUMNS if c.kind == "ts"]
_OPTIONAL_COUNTS = [f"request_{n}" for n in COUNT_FIELDS if n not in ALWAYS_SENT_COUNTS]


def _batches_frame(cols: dict[str, list[Any]], rejected: set[int], provider: str,
                   as_of: datetime) -> pl.DataFrame:
    data = {name: _series(name, cols[name], dtype) for name, dtype in _ROW_COLUMNS}
    df = pl.DataFrame(data)
    if rejected:
        keep = [i not in rejected for i in range(df.height)]
        df = df.filter(pl.Series(keep))
    # One lazy plan for the casts and every derived column: polars runs it in one pass.
    lazy = df.lazy().with_columns(_typing_step(provider))
    return derive_batch_columns(lazy, as_of).select(STAGED_BATCH_COLUMNS).collect()


@functools.lru_cache(maxsize=64)
def _typing_step(provider: str) -> tuple[pl.Expr, ...]:
    """The provider, omitted counts and unix seconds as timestamps (0, Go's "unset", as
    null): built once per provider, since a sync flattens dozens of parts of each."""
    return (
        pl.lit(provider, pl.String).alias("provider"),
        *[pl.col(c).fill_null(0) for c in _OPTIONAL_COUNTS],  # Bifrost omits zeros
        *[
            pl.when(pl.col(t) != 0).then(pl.col(t) * 1_000_000)
            .cast(pl.Datetime("us", "UTC")).alias(t)
            for t in _TS_COLUMNS
        ],
    )


def _series(name: str, values: list[Any], dtype: pl.DataType) -> pl.Series:
    """A column from checked values: polars may take its strict (fast) constructor; float
    columns may still hold JSON integers, which need the converting one."""
    return pl.Series(name, values, dtype=dtype, strict=dtype != pl.Float64())


def _child_frame(rows: list[dict[str, Any]] | dict[str, list[Any]], provider: str,
                 cols: tuple[Column, ...]) -> pl.DataFrame:
    """Child rows (a list of row dicts, or a dict of columns) as a typed frame."""
    schema = {c.name: c.polars_type for c in cols if c.name != "provider"}
    if isinstance(rows, dict):
        data = {name: pl.Series(name, rows[name], dtype=dtype, strict=True)
                for name, dtype in schema.items()}
    elif rows:
        data = pl.DataFrame(rows, schema=schema, orient="row").to_dict()
    else:
        data = {name: pl.Series(name, [], dtype=dtype) for name, dtype in schema.items()}
    return _with_provider(data, provider, [c.name for c in cols])


def _metadata_frame(ids: list[str], keys: list[str], values: list[str], provider: str
                    ) -> pl.DataFrame:
    # Keys and values were checked to be strings: the strict constructor is safe.
    data = {name: pl.Series(name, col, dtype=pl.String, strict=True)
            for name, col in (("batch_id", ids), ("key", keys), ("value", values))}
    return _with_provider(data, provider, BATCH_METADATA.column_names())


def _with_provider(data: dict[str, pl.Series], provider: str, order: list[str]
                   ) -> pl.DataFrame:
    """The columns plus a constant provider column, in ``order``: built as Series, since
    with_columns and select on a frame would each run a query plan, a fixed cost paid
    twice per child frame of every part."""
    data["provider"] = constant_column("provider", provider, len(next(iter(data.values()))))
    return pl.DataFrame([data[name] for name in order])
