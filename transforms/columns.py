"""Small column builders shared by the transforms and the staging (no I/O)."""

from __future__ import annotations

import polars as pl


def constant_column(name: str, value: str | int, height: int,
                    dtype: type[pl.DataType] = pl.String) -> pl.Series:
    """A column of ``height`` copies of ``value``. Built as a Series, not with
    ``with_columns(pl.lit(...))`` on a frame: that runs a query plan (~0.1 ms, and a wake-up
    of polars' threads), which a sync's many small results bodies and parts each paid."""
    return pl.Series(name, [value], dtype=dtype).new_from_index(0, height)
