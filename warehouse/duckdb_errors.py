"""DuckDB's errors during a sync, said as one line with what to do: running out of the memory
cap is a setting to raise, and a fatal error (the database invalidated) keeps what was
committed."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import duckdb

from batchlake.common import DatabaseError
from batchlake.warehouse.db import checkpoint_memory_limit, memory_limit

P = ParamSpec("P")
R = TypeVar("R")

_MEMORY_WORDS = ("could not allocate", "failed to pin", "out of memory")


def fatal_message(e: duckdb.Error) -> str:
    """One line for an error after which DuckDB has invalidated the database."""
    text = str(e)
    if "Original error:" in text:  # a later statement, repeating the first fatal error
        text = text.split("Original error:", 1)[1]
    first = text.strip().strip('"').splitlines()[0] if text.strip() else "no message"
    if any(w in text.lower() for w in _MEMORY_WORDS):
        return (f"DuckDB ran out of memory writing the database file (checkpoint limit "
                f"{checkpoint_memory_limit()}); the last committed chunk is kept: set "
                "BATCHLAKE_DUCKDB_MEMORY higher (e.g. 256MB) and run the sync again")
    return (f"DuckDB stopped with a fatal error ({first[:200]}); the last committed chunk is "
            "kept: run the sync again")


def oom_is_a_setting(fn: Callable[P, R]) -> Callable[P, R]:
    """DuckDB running out of the sync's memory cap is a setting to raise, not a crash; so is
    a fatal error (DuckDB's answer to running out of memory in a checkpoint)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except duckdb.OutOfMemoryException:
            raise DatabaseError(
                f"DuckDB ran out of the sync's {memory_limit()} memory cap; set "
                "BATCHLAKE_DUCKDB_MEMORY higher (e.g. 256MB) or --chunk-size lower, and run "
                "the sync again") from None
        except duckdb.FatalException as e:
            raise DatabaseError(fatal_message(e)) from None
        except duckdb.IOException as e:
            # An attached file (the sync's writer, see db.SYNC_ROW_GROUP_SIZE) reports its
            # invalidation as an IO error, not a fatal one.
            if "has been invalidated" in str(e):
                raise DatabaseError(fatal_message(e)) from None
            raise

    return wrapper
