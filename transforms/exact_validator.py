"""The exact per-object validator of batch objects (no I/O): checks each field against its
declared kind (polars coerces silently, so it cannot be the validator), flattens the object
into one row, or rejects it with a reason that names the field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from batchlake.transforms.batch_fields import (
    CACHE_DEBUG_COLUMNS,
    COUNT_COLUMNS,
    ERROR_ENTRY_COLUMNS,
    ERRORS_COLUMNS,
    EXTRA_FIELDS_ALIASES,
    EXTRA_FIELDS_COLUMNS,
    INT64_MAX,
    INT64_MIN,
    MAX_UNIX_SECONDS,
    RAW_PAYLOAD_KEYS,
    TOP_COLUMNS,
    errors_json,
    extras_json,
    raw_payload_json,
)
from batchlake.transforms.redact import redact
from batchlake.transforms.schema import ALWAYS_SENT_COUNTS


class Reject(Exception):
    """An object that cannot become a row; ``str()`` is the reason."""


def _type_name(v: Any) -> str:
    return {str: "string", bool: "boolean", int: "integer", float: "number", dict: "object",
            list: "array"}.get(type(v), type(v).__name__)


def checked_value(path: str, kind: str, v: Any) -> Any:
    """Validate one scalar; return the value to store (None for absent/null)."""
    if v is None:
        return None
    t = type(v)
    if kind == "str":
        if t is str:
            return v
    elif kind == "int":
        if t is int:
            if INT64_MIN <= v <= INT64_MAX:
                return v
            raise Reject(f"{path}: {v} is outside the int64 range")
    elif kind == "float":
        if t is float or t is int:
            return float(v)
    elif kind == "bool":
        if t is bool:
            return v
    elif kind == "ts":
        return _timestamp(path, v)
    raise Reject(f"{path}: expected {_KIND_WORD[kind]}, got {_type_name(v)} {_short(v)}")


_KIND_WORD = {"str": "a string", "int": "an integer", "float": "a number", "bool": "a boolean",
              "ts": "unix seconds", "json": "an object"}


def _short(v: Any) -> str:
    s = orjson.dumps(v).decode() if not isinstance(v, str) else repr(v)
    return s if len(s) <= 40 else s[:37] + "..."


def _timestamp(path: str, v: Any) -> int | None:
    t = type(v)
    if t is int:
        if v == 0:
            return None  # Go emits a pointer to 0 for "unset"
        if v < 0:
            raise Reject(f"{path}: negative timestamp {v}")
        if v > MAX_UNIX_SECONDS:
            raise Reject(f"{path}: {v} looks like milliseconds, expected unix seconds")
        return int(v)
    if t is str:
        try:
            parsed = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            raise Reject(f"{path}: {_short(v)} is neither unix seconds nor ISO-8601") from None
        if parsed.tzinfo is None:
            raise Reject(f"{path}: ISO timestamp {_short(v)} has no time zone")
        return _timestamp(path, int(parsed.timestamp()))
    raise Reject(f"{path}: expected unix seconds, got {_type_name(v)} {_short(v)}")


def _as_object(path: str, v: Any) -> dict[str, Any]:
    if v is None:
        return {}
    if type(v) is not dict:
        raise Reject(f"{path}: expected an object, got {_type_name(v)} {_short(v)}")
    return v


def validated_row(obj: Any, store_raw: bool
                  ) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, str]]:
    """Validate and flatten one object into (batch row, error rows, metadata); raise
    ``Reject`` if it cannot be a row. The row has every column but ``metadata``, whose
    cell ``metadata_cells`` makes of the metadata returned."""
    if type(obj) is not dict:
        raise Reject(f"not a JSON object but {_type_name(obj)}")
    bid = obj.get("id")
    if type(bid) is not str or not bid:
        raise Reject("missing id" if bid is None else f"id: expected a non-empty string, got "
                     f"{_type_name(bid)} {_short(bid)}")
    status = obj.get("status")
    if type(status) is not str or not status:
        raise Reject(f"status: expected a non-empty string, got {_type_name(status)}")
    row: dict[str, Any] = {"batch_id": bid}
    for name, key, kind in TOP_COLUMNS:
        row[name] = checked_value(key, kind, obj.get(key))

    rc = obj.get("request_counts")
    if type(rc) is not dict:
        raise Reject("request_counts: missing" if rc is None else
                     f"request_counts: expected an object, got {_type_name(rc)}")
    for name, key, kind in COUNT_COLUMNS:
        v = checked_value(f"request_counts.{key}", kind, rc.get(key))
        if v is None:
            if key in ALWAYS_SENT_COUNTS:
                raise Reject(f"request_counts.{key}: missing")
            v = 0  # Bifrost omits these when zero
        row[name] = v

    errs = _as_object("errors", obj.get("errors"))
    for name, key, kind in ERRORS_COLUMNS:
        row[name] = checked_value(f"errors.{key}", kind, errs.get(key))
    error_rows, row["errors_json"] = checked_error_rows(bid, errs)
    row["errors_count"] = len(error_rows)

    metadata = checked_metadata(obj.get("metadata"))

    xf = _as_object("extra_fields", obj.get("extra_fields"))
    for name, key, kind in EXTRA_FIELDS_COLUMNS:
        v = xf.get(key)
        if v is None and key in EXTRA_FIELDS_ALIASES:
            v = xf.get(EXTRA_FIELDS_ALIASES[key])
        row[name] = checked_value(f"extra_fields.{key}", kind, v)
    cd = _as_object("extra_fields.cache_debug", xf.get("cache_debug"))
    for name, key, kind in CACHE_DEBUG_COLUMNS:
        row[name] = checked_value(f"extra_fields.cache_debug.{key}", kind, cd.get(key))

    for key in RAW_PAYLOAD_KEYS:
        row[key] = raw_payload_json(xf.get(key)) if store_raw else None
    row["extras"] = extras_json(obj, xf)
    return row, error_rows, metadata


def checked_metadata(meta: Any) -> dict[str, str]:
    """An object's metadata, checked to hold strings only ({} when absent or null)."""
    if meta is None:
        return {}
    if type(meta) is not dict:
        raise Reject(f"metadata: expected an object, got {_type_name(meta)}")
    for k, v in meta.items():
        if type(v) is not str:
            raise Reject(f"metadata.{k}: expected a string, got {_type_name(v)}")
    return meta


def checked_error_rows(bid: str, errs: dict[str, Any]
                       ) -> tuple[list[dict[str, Any]], str | None]:
    """errors.data as checked child rows, plus its ``errors_json`` cell."""
    data = errs.get("data")
    rows: list[dict[str, Any]] = []
    if data is None:
        return rows, None
    if type(data) is not list:
        raise Reject(f"errors.data: expected an array, got {_type_name(data)}")
    for i, e in enumerate(data):
        e = _as_object(f"errors.data[{i}]", e)
        er: dict[str, Any] = {"batch_id": bid, "idx": i}
        for name, kind in ERROR_ENTRY_COLUMNS:
            er[name] = checked_value(f"errors.data[{i}].{name}", kind, e.get(name))
        rows.append(er)
    return rows, errors_json([{k: v for k, v in er.items() if k not in ("batch_id", "idx")}
                              for er in rows])


def reject_payload(obj: Any) -> str:
    """The payload stored with a reject: the object as received, secrets redacted."""
    try:
        return orjson.dumps(redact(obj)).decode()
    except TypeError:
        return repr(obj)[:10_000]
