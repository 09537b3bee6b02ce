"""Derived batch columns as vectorised polars expressions (no I/O)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

import polars as pl

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)

# One status vocabulary across providers.
STATUS_VOCABULARY: tuple[str, ...] = (
    "validating", "in_progress", "finalizing", "completed", "failed", "expired",
    "cancelling", "cancelled", "deleted", "unknown",
)
TERMINAL_STATUSES: tuple[str, ...] = ("completed", "failed", "expired", "cancelled", "deleted")
_ACTIVE = ("validating", "in_progress", "finalizing")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_WINDOW_S = 100 * 365 * 86400  # completion windows are hours; a century is a bad value


def status_norm_expr() -> pl.Expr:
    """Normalise status: Anthropic ``ended``/``canceling``, ``canceled`` vs ``cancelled``,
    Gemini ``done``; anything unrecognised becomes ``unknown`` (kept, never dropped)."""
    s = pl.col("status").str.to_lowercase()
    ps = pl.col("processing_status").str.to_lowercase()
    return (
        pl.when(s.is_in(["cancelled", "canceled"])).then(pl.lit("cancelled"))
        .when(s == "ended").then(
            pl.when(pl.col("cancelling_at").is_not_null() | pl.col("cancelled_at").is_not_null())
            .then(pl.lit("cancelled"))
            .when((pl.col("request_expired") > 0) & (pl.col("request_succeeded") <= 0)
                  & (pl.col("request_failed") <= 0))
            .then(pl.lit("expired"))
            .otherwise(pl.lit("completed"))
        )
        .when(s.is_in(["cancelling", "canceling"]) | (ps == "canceling"))
        .then(pl.lit("cancelling"))
        .when(s.is_in(list(_ACTIVE)) & pl.col("done").fill_null(False)).then(pl.lit("completed"))
        .when(s.is_in(list(STATUS_VOCABULARY))).then(s)
        .otherwise(pl.lit("unknown"))
    )


def window_seconds_expr() -> pl.Expr:
    """'24h' -> 86400; '30m', '2d', '3600s' and a bare number of seconds too."""
    m = pl.col("completion_window").str.strip_chars().str.to_lowercase().str.extract_groups(
        r"^(\d+)\s*([smhd]?)$"
    )
    n = m.struct.field("1").cast(pl.Int64, strict=False)
    unit = m.struct.field("2")
    mult: Any = pl.when(unit == "").then(1)
    for u, secs in _UNITS.items():
        mult = mult.when(unit == u).then(secs)
    # A window past MAX_WINDOW_S is no window: created_at plus it would leave the timestamp
    # range. n is bounded first so that n * unit cannot wrap int64.
    seconds: pl.Expr = pl.when(n <= MAX_WINDOW_S).then(n * mult.otherwise(None))
    return pl.when(seconds <= MAX_WINDOW_S).then(seconds)


def _seconds_between(a: str, b: pl.Expr) -> pl.Expr:
    return (b - pl.col(a)).dt.total_microseconds() / 1_000_000


def derive_batch_columns(df: Frame, as_of: datetime) -> Frame:
    """Add status_norm, is_terminal, window, deadline, durations and is_overdue (to a frame,
    or to a lazy plan)."""
    end = pl.coalesce("completed_at", "failed_at", "expired_at", "cancelled_at")
    df = df.with_columns(
        status_norm_expr().alias("status_norm"),
        window_seconds_expr().alias("completion_window_s"),
    )
    df = df.with_columns(
        pl.col("status_norm").is_in(list(TERMINAL_STATUSES)).alias("is_terminal"),
        (pl.col("created_at") + pl.duration(seconds=pl.col("completion_window_s")))
        .alias("deadline_at"),
        _seconds_between("created_at", pl.col("in_progress_at")).alias("queue_s"),
        _seconds_between("in_progress_at", end).alias("processing_s"),
        _seconds_between("created_at", end).alias("total_s"),
    )
    now = pl.lit(as_of).dt.replace_time_zone("UTC") if as_of.tzinfo is None else pl.lit(as_of)
    return df.with_columns(
        (~pl.col("is_terminal") & (
            (pl.col("deadline_at") < now).fill_null(False)
            | (pl.col("expires_at") < now).fill_null(False)
        )).alias("is_overdue")
    )
