"""Query answers as JSON values, for the report's JSON, the CLI's --format json and the
commands' twins: frames as lists of rows, datetimes in ISO 8601, HUGEINT sums as integers."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import polars as pl


def plain(v: Any) -> Any:
    """HUGEINT sums arrive as Decimal(38, 0): shown (and written as JSON) as integers."""
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    return v


def jsonable(value: Any) -> Any:
    """Frames, dataclass-like rows, datetimes and HUGEINT Decimals as JSON values."""
    if isinstance(value, pl.DataFrame):
        return [jsonable(row) for row in value.to_dicts()]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return plain(value)
