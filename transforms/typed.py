"""List pages decoded straight into typed records (msgspec), validated in C; no I/O here.

The common case, a page whose every object is what Bifrost's schema allows, is decoded by
msgspec into structs generated from ``schema.py``: types, int64 ranges, unix-second bounds,
required fields and non-empty ids are checked while decoding, raw payloads are kept as
undecoded bytes (``msgspec.Raw``), and no per-object dict is built. Columns are then read off
the structs; their cells and frames are made by the functions the exact path uses
(``batch_fields.py``, ``batch_frames.py``). A page that breaks any rule (a wrong type, an
unknown field, a timestamp in ISO text…) raises ``NotTyped`` and takes the exact per-object
path of ``flatten.py`` instead, which decides each object and gives rejects their reasons:
both paths give the same rows (``tests/test_typed.py`` holds them to that).
"""

from __future__ import annotations

import itertools
import operator
import types
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import msgspec
import orjson

from batchlake.common import paused_gc
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
    FieldGroup,
    errors_json,
    extras_json,
    metadata_cells,
    raw_payload_json,
)
from batchlake.transforms.batch_frames import FlatFrames, frames
from batchlake.transforms.schema import ALWAYS_SENT_COUNTS, PASSTHROUGH_EXTRA_FIELDS

Int64 = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]
# 0 is Go's "unset" (read as NULL below); negatives and milliseconds go to the exact path.
UnixSeconds = Annotated[int, msgspec.Meta(ge=0, le=MAX_UNIX_SECONDS)]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
_TYPES: dict[str, Any] = {"str": str, "int": Int64, "float": float, "bool": bool,
                           "ts": UnixSeconds}
_NO_RAW = msgspec.Raw()  # an absent raw field (a JSON null arrives as Raw(b"null"))
# extra_fields kept undecoded: the raw payloads and those batchlake keeps in extras.
_RAW_KEYS = (*RAW_PAYLOAD_KEYS, *PASSTHROUGH_EXTRA_FIELDS)


class NotTyped(Exception):
    """The page has something the typed decoder does not take; ``str()`` says what."""


def _struct(name: str, fields: list[tuple[str, Any, Any]], *, closed: bool) -> Any:
    """A struct of optional fields (``closed``: an unknown key is an error, so that a page
    with fields batchlake keeps in ``extras`` takes the exact path)."""
    return msgspec.defstruct(name, fields, kw_only=True, gc=False, forbid_unknown_fields=closed)


def _list_of(item: Any) -> Any:
    return types.GenericAlias(list, (item,))  # list[item], for a type made at run time


def _optional(groups: FieldGroup) -> list[tuple[str, Any, Any]]:
    return [(key, _TYPES[kind] | None, None) for _, key, kind in groups]


# Nested objects ignore keys they do not know, as the exact path does; only the top level
# and extra_fields keep unknown keys (in extras), so only they are closed.
Counts: Any = _struct("Counts", [
    (key, Int64 if key in ALWAYS_SENT_COUNTS else Int64 | None,
     msgspec.NODEFAULT if key in ALWAYS_SENT_COUNTS else None)
    for _, key, _kind in COUNT_COLUMNS], closed=False)
ErrorEntry: Any = _struct("ErrorEntry", [(name, _TYPES[kind] | None, None)
                                    for name, kind in ERROR_ENTRY_COLUMNS], closed=False)
Errors: Any = _struct("Errors", [*_optional(ERRORS_COLUMNS),
                                 ("data", _list_of(ErrorEntry) | None, None)], closed=False)
CacheDebug: Any = _struct("CacheDebug", _optional(CACHE_DEBUG_COLUMNS), closed=False)
ExtraFields: Any = _struct("ExtraFields", [
    *_optional(EXTRA_FIELDS_COLUMNS),
    *((alias, str | None, None) for alias in EXTRA_FIELDS_ALIASES.values()),
    ("cache_debug", CacheDebug | None, None),
    *((key, msgspec.Raw, _NO_RAW) for key in _RAW_KEYS),
], closed=True)
Batch: Any = _struct("Batch", [
    ("id", NonEmpty, msgspec.NODEFAULT),
    ("status", NonEmpty, msgspec.NODEFAULT),
    ("request_counts", Counts, msgspec.NODEFAULT),
    *((key, _TYPES[kind] | None, None) for _, key, kind in TOP_COLUMNS if key != "status"),
    ("metadata", dict[str, str] | None, None),
    ("errors", Errors | None, None),
    ("extra_fields", ExtraFields | None, None),
], closed=True)
ListPage: Any = msgspec.defstruct("ListPage", [
    ("data", _list_of(Batch) | None, None), ("has_more", bool | None, None),
    ("next_cursor", str | None, None), ("last_id", str | None, None),
], kw_only=True, gc=False)  # the page's other keys (object, first_id, …) are not read

_DECODER = msgspec.json.Decoder(ListPage)
_NO_ERRORS, _NO_XF, _NO_CACHE = Errors(), ExtraFields(), CacheDebug()


def decode_page(body: bytes, *, keep_raw: bool = True) -> Any:
    """A list page as typed records (``.data``, ``.has_more``, ``.next_cursor``,
    ``.last_id``); raises ``NotTyped`` if it needs the exact path. Without ``keep_raw`` the
    raw payloads are dropped at once (they are stored only with --store-raw)."""
    try:
        page = _DECODER.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        raise NotTyped(str(e)) from None
    _detach(page.data or (), keep_raw)
    return page


def _detach(records: Sequence[Any], keep_raw: bool) -> None:
    """Let the page's bytes go: a Raw field is a view into the body, so one raw payload
    would hold its whole page in memory until the part is flattened."""
    xfs = [x for x in map(_XFS, records) if x is not None]
    for key in _RAW_KEYS:
        keep = keep_raw or key not in RAW_PAYLOAD_KEYS
        get = operator.attrgetter(key)
        # compress() picks the records whose field is set in C: most are not.
        for x in itertools.compress(xfs, map(get, xfs)):
            setattr(x, key, msgspec.Raw(bytes(get(x))) if keep else _NO_RAW)


def record_ids(records: Sequence[Any]) -> list[str]:
    return list(map(_ID, records))


def oldest_created(records: Sequence[Any]) -> int | None:
    ints = [v for v in map(_CREATED, records) if v]
    return min(ints) if ints else None


_ID = operator.attrgetter("id")
_CREATED = operator.attrgetter("created_at")


def _raw_value(raw: msgspec.Raw) -> Any:
    return orjson.loads(bytes(raw))


def _column(records: Sequence[Any], key: str) -> list[Any]:
    # A timestamp of 0 (Go's "unset") stays 0 here: frames() reads it as null, vectorised.
    return list(map(operator.attrgetter(key), records))


def flatten_records(records: Sequence[Any], provider: str, *, as_of: datetime,
                    store_raw: bool = False) -> FlatFrames:
    """Typed records (from ``decode_page``) to the frames ``flatten_objects`` makes of the
    same objects. Duplicates keep the last occurrence, as there."""
    recs = list(records)
    ids = record_ids(recs)
    duplicates = 0
    if len(set(ids)) != len(ids):
        last = {bid: i for i, bid in enumerate(ids)}
        recs = [r for i, r in enumerate(recs) if last[ids[i]] == i]
        duplicates, ids = len(ids) - len(recs), record_ids(recs)
    n = len(recs)
    with paused_gc():
        cols: dict[str, list[Any]] = {"batch_id": ids}
        for name, key, _ in TOP_COLUMNS:
            cols[name] = _column(recs, key)
        rcs = list(map(operator.attrgetter("request_counts"), recs))
        for name, key, _ in COUNT_COLUMNS:
            cols[name] = _column(rcs, key)
        errs = [e if e is not None else _NO_ERRORS for e in map(_ERRORS, recs)]
        for name, key, _ in ERRORS_COLUMNS:
            cols[name] = _column(errs, key)
        xfs = [x if x is not None else _NO_XF for x in map(_XFS, recs)]
        for name, key, _ in EXTRA_FIELDS_COLUMNS:
            vals = _column(xfs, key)
            if key in EXTRA_FIELDS_ALIASES:
                alias = list(map(operator.attrgetter(EXTRA_FIELDS_ALIASES[key]), xfs))
                vals = [v if v is not None else a for v, a in zip(vals, alias, strict=True)]
            cols[name] = vals
        cds = [c if c is not None else _NO_CACHE for c in map(_CACHE_DEBUG, xfs)]
        for name, key, _ in CACHE_DEBUG_COLUMNS:
            cols[name] = _column(cds, key)

        error_cols, cols["errors_count"], cols["errors_json"] = _error_columns(ids, errs)
        cols["metadata"], metadata_rows = metadata_cells(ids, map(_METADATA, recs))
        cols["extras"] = _extras(xfs)
        for key in RAW_PAYLOAD_KEYS:
            cols[key] = [raw_payload_json(_raw_value(raw)) if raw else None
                         for raw in map(operator.attrgetter(key), xfs)
                         ] if store_raw else [None] * n
    return frames(cols, set(), provider, as_of, errors=error_cols, metadata=metadata_rows,
                  rejects=[], duplicates=duplicates)


_ERRORS = operator.attrgetter("errors")
_XFS = operator.attrgetter("extra_fields")
_CACHE_DEBUG = operator.attrgetter("cache_debug")
_METADATA = operator.attrgetter("metadata")
_ERROR_NAMES = [name for name, _ in ERROR_ENTRY_COLUMNS]


def _error_columns(ids: list[str], errs: list[Any]
                   ) -> tuple[dict[str, list[Any]], list[int], list[str | None]]:
    """errors.data as child-table columns, and each batch's count and ``errors_json``
    cell."""
    n = len(ids)
    counts: list[int] = [0] * n
    texts: list[str | None] = [None] * n
    entries: list[Any] = []
    child: dict[str, list[Any]] = {"batch_id": [], "idx": []}
    for i, e in enumerate(errs):
        data = e.data
        if not data:
            continue
        k = len(data)
        child["batch_id"].extend([ids[i]] * k)
        child["idx"].extend(range(k))
        entries.extend(data)
        counts[i] = k
        texts[i] = errors_json(list(map(msgspec.structs.asdict, data)))
    for name in _ERROR_NAMES:
        child[name] = list(map(operator.attrgetter(name), entries))
    return child, counts, texts


def _extras(xfs: list[Any]) -> list[str | None]:
    """Each record's ``extras`` cell: a typed record's only unknown fields are the
    extra_fields batchlake keeps undecoded (its top level is closed)."""
    found: dict[int, dict[str, Any]] = {}
    for key in PASSTHROUGH_EXTRA_FIELDS:
        for i, raw in enumerate(map(operator.attrgetter(key), xfs)):
            if raw:
                found.setdefault(i, {})[key] = _raw_value(raw)
    out: list[str | None] = [None] * len(xfs)
    for i, passthrough in found.items():
        out[i] = extras_json(_NO_TOP, passthrough)
    return out


_NO_TOP: dict[str, Any] = {}
