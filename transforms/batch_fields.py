"""Where each batch column is read from a gateway object, and the cells both flattening
paths (``flatten.py``'s objects, ``typed.py``'s records) compute from the same rules: the
error entries, the metadata, the unknown fields (``extras``) and the raw payloads. No I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from batchlake.transforms.redact import redact
from batchlake.transforms.schema import BATCH_ERRORS, SOURCED_BATCH_COLUMNS

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Unix seconds past this (year 5138) are almost surely milliseconds.
MAX_UNIX_SECONDS = 10**11

# (column, key in the object, kind) of the scalar columns, grouped by the object they live in.
FieldGroup = list[tuple[str, str, str]]


def _group(prefix: tuple[str, ...]) -> FieldGroup:
    n = len(prefix) + 1
    return [
        (c.name, c.source[-1], c.kind)
        for c in SOURCED_BATCH_COLUMNS
        if c.source and len(c.source) == n and c.source[:-1] == prefix and c.kind != "json"
    ]


TOP_COLUMNS = [g for g in _group(()) if g[0] != "batch_id"]  # the id is checked apart
COUNT_COLUMNS = _group(("request_counts",))
ERRORS_COLUMNS = _group(("errors",))
EXTRA_FIELDS_COLUMNS = _group(("extra_fields",))
CACHE_DEBUG_COLUMNS = _group(("extra_fields", "cache_debug"))
# (column, kind) of an errors.data entry, one child row each.
ERROR_ENTRY_COLUMNS = [
    (c.name, c.kind) for c in BATCH_ERRORS.columns if c.source and c.name != "batch_id"
]
# extra_fields keys read when the column's own key is absent or null.
EXTRA_FIELDS_ALIASES = {"model_requested": "original_model_requested",
                        "model_deployment": "resolved_model_used"}
RAW_PAYLOAD_KEYS = ("raw_request", "raw_response")

_JSON_OPTS = orjson.OPT_SORT_KEYS
_KNOWN_TOP = {c.source[0] for c in SOURCED_BATCH_COLUMNS if c.source} | {"errors", "extra_fields"}
_KNOWN_XF = {
    c.source[1] for c in SOURCED_BATCH_COLUMNS if c.source and c.source[0] == "extra_fields"
} | {*EXTRA_FIELDS_ALIASES.values(), *RAW_PAYLOAD_KEYS}


def errors_json(entries: list[dict[str, Any]]) -> str | None:
    """A batch's error entries as the ``errors_json`` cell: every field, nulls included,
    keys sorted; None when there are none."""
    return orjson.dumps(entries, option=_JSON_OPTS).decode() if entries else None


def metadata_cells(ids: Sequence[str], metadata: Iterable[Mapping[str, str] | None]
                   ) -> tuple[list[str | None], tuple[list[str], list[str], list[str]]]:
    """Each batch's checked metadata as its ``metadata`` cell (JSON, keys sorted; None when
    empty) and as ``batch_metadata`` child rows (batch ids, keys, values)."""
    texts: list[str | None] = [None] * len(ids)
    child_ids: list[str] = []
    keys: list[str] = []
    values: list[str] = []
    # Child rows as columns: polars builds a frame from them far faster than from row dicts.
    for i, (bid, m) in enumerate(zip(ids, metadata, strict=True)):
        if m:
            texts[i] = orjson.dumps(m, option=_JSON_OPTS).decode()
            child_ids.extend([bid] * len(m))
            keys.extend(m)
            values.extend(m.values())
    return texts, (child_ids, keys, values)


def extras_json(obj: Mapping[str, Any], xf: Mapping[str, Any]) -> str | None:
    """The fields batchlake has no column for, kept in ``extras``: the object's unknown keys
    and its extra_fields' as ``{"extra_fields.<key>": value}``, redacted, keys sorted; None
    when there are none."""
    unknown = obj.keys() - _KNOWN_TOP
    unknown_xf = xf.keys() - _KNOWN_XF if xf else ()
    if not (unknown or unknown_xf):
        return None
    extras = {k: obj[k] for k in unknown}
    extras.update({f"extra_fields.{k}": xf[k] for k in unknown_xf})
    return orjson.dumps(redact(extras), option=_JSON_OPTS).decode()


def raw_payload_json(value: Any) -> str | None:
    """A raw request or response as stored (only with --store-raw): its JSON, secrets
    redacted; None when absent or null."""
    return orjson.dumps(redact(value)).decode() if value is not None else None
