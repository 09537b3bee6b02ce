"""The column-wise fast path of the exact path (no I/O): every column of a chunk of objects
read in list comprehensions, and the objects it cannot vouch for flagged for the per-object
validator (``exact_validator.py``), which decides them and gives the reasons.
"""

from __future__ import annotations

from typing import Any

from batchlake.transforms.batch_fields import (
    CACHE_DEBUG_COLUMNS,
    COUNT_COLUMNS,
    ERRORS_COLUMNS,
    EXTRA_FIELDS_ALIASES,
    EXTRA_FIELDS_COLUMNS,
    INT64_MAX,
    INT64_MIN,
    MAX_UNIX_SECONDS,
    RAW_PAYLOAD_KEYS,
    TOP_COLUMNS,
    extras_json,
    raw_payload_json,
)
from batchlake.transforms.exact_validator import Reject, checked_error_rows, checked_metadata
from batchlake.transforms.schema import ALWAYS_SENT_COUNTS

_LO, _HI = INT64_MIN, INT64_MAX
_EMPTY: dict[str, Any] = {}


def _bad(values: list[Any], kind: str) -> list[int]:
    """Indices whose value the fast path cannot take as is (the validator decides)."""
    if kind == "str":
        return [i for i, v in enumerate(values) if v is not None and type(v) is not str]
    if kind == "int":
        return [i for i, v in enumerate(values)
                if v is not None and (type(v) is not int or not _LO <= v <= _HI)]
    if kind == "ts":  # negatives, milliseconds and ISO text go to the validator; 0 (unset)
        # stays, as on the typed path: frames() reads it as null.
        return [i for i, v in enumerate(values)
                if v is not None and (type(v) is not int or v < 0 or v > MAX_UNIX_SECONDS)]
    if kind == "float":
        return [i for i, v in enumerate(values)
                if v is not None and type(v) is not float and type(v) is not int]
    if kind == "bool":
        return [i for i, v in enumerate(values) if v is not None and type(v) is not bool]
    raise ValueError(kind)


def _objects_column(values: list[Any], suspect: set[int]) -> list[dict[str, Any]]:
    """A column of nested objects; anything else but null is suspect, read as {}."""
    out = []
    for i, v in enumerate(values):
        if type(v) is dict:
            out.append(v)
        else:
            if v is not None:
                suspect.add(i)
            out.append(_EMPTY)
    return out


def fast_columns(objs: list[Any], store_raw: bool) -> tuple[dict[str, list[Any]], set[int]]:
    """Every column of ``objs`` but ``metadata``, and the indices of the objects that need
    the validator (wrong types, edge values, missing required fields). Besides the batch
    columns, ``_errors`` holds each object's error child rows and ``_meta`` its checked
    metadata (the dicts themselves: their rows need no JSON re-parse)."""
    suspect = {i for i, o in enumerate(objs) if type(o) is not dict}
    dicts = [o if type(o) is dict else _EMPTY for o in objs]
    cols: dict[str, list[Any]] = {}

    def take(name: str, values: list[Any], kind: str) -> None:
        cols[name] = values
        suspect.update(_bad(values, kind))

    for name, key in (("batch_id", "id"), ("status", "status")):
        vals = [d.get(key) for d in dicts]
        cols[name] = vals
        suspect.update(i for i, v in enumerate(vals) if type(v) is not str or not v)
    for name, key, kind in TOP_COLUMNS:
        if name != "status":
            take(name, [d.get(key) for d in dicts], kind)
    raw_rcs = [d.get("request_counts") for d in dicts]
    suspect.update(i for i, v in enumerate(raw_rcs) if v is None)
    rcs = _objects_column(raw_rcs, suspect)
    for name, key, kind in COUNT_COLUMNS:
        vals = [rc.get(key) for rc in rcs]
        take(name, vals, kind)
        if key in ALWAYS_SENT_COUNTS:
            suspect.update(i for i, v in enumerate(vals) if v is None)
    errs = _objects_column([d.get("errors") for d in dicts], suspect)
    for name, key, kind in ERRORS_COLUMNS:
        take(name, [e.get(key) for e in errs], kind)
    xfs = _objects_column([d.get("extra_fields") for d in dicts], suspect)
    for name, key, kind in EXTRA_FIELDS_COLUMNS:
        vals = [x.get(key) for x in xfs]
        if key in EXTRA_FIELDS_ALIASES:
            alias = EXTRA_FIELDS_ALIASES[key]
            vals = [v if v is not None else x.get(alias) for v, x in zip(vals, xfs, strict=True)]
        take(name, vals, kind)
    cds = _objects_column([x.get("cache_debug") for x in xfs], suspect)
    for name, key, kind in CACHE_DEBUG_COLUMNS:
        take(name, [c.get(key) for c in cds], kind)

    # Per-object parts: errors, metadata, unknown fields, raw payloads.
    n = len(objs)
    cols["errors_count"] = [0] * n
    cols["errors_json"] = [None] * n
    cols["extras"] = [None] * n
    for key in RAW_PAYLOAD_KEYS:
        cols[key] = [None] * n
    cols["_errors"] = [None] * n
    cols["_meta"] = [None] * n
    for i in range(n):
        if i in suspect:
            continue
        d, x = dicts[i], xfs[i]
        try:
            if errs[i]:
                er, ej = checked_error_rows(cols["batch_id"][i], errs[i])
                cols["_errors"][i], cols["errors_count"][i], cols["errors_json"][i] = \
                    er, len(er), ej
            meta = d.get("metadata")
            if meta is not None:
                cols["_meta"][i] = checked_metadata(meta)
        except Reject:
            suspect.add(i)
            continue
        cols["extras"][i] = extras_json(d, x)
        if store_raw and x:
            for key in RAW_PAYLOAD_KEYS:
                cols[key][i] = raw_payload_json(x.get(key))
    return cols, suspect
