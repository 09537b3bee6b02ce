"""What a stored row must hold for a given gateway object, read straight from the JSON by the
schema's source paths (independently of the flattener's code)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from batchlake.transforms.schema import ALWAYS_SENT_COUNTS, SOURCED_BATCH_COLUMNS


def _get(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def expected_values(obj: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c in SOURCED_BATCH_COLUMNS:
        if c.name == "provider" or c.kind == "json":
            continue
        assert c.source is not None
        v = _get(obj, c.source)
        if v is None and c.source[-1] in ("model_requested", "model_deployment"):
            alias = {"model_requested": "original_model_requested",
                     "model_deployment": "resolved_model_used"}[c.source[-1]]
            v = _get(obj, (*c.source[:-1], alias))
        if c.kind == "ts":
            v = datetime.fromtimestamp(v, UTC) if v else None
        elif c.kind == "float" and v is not None:
            v = float(v)
        elif (c.source[0] == "request_counts" and v is None
              and c.source[-1] not in ALWAYS_SENT_COUNTS):
            v = 0
        out[c.name] = v
    return out


def compare_row(obj: dict[str, Any], row: dict[str, Any]) -> list[str]:
    """Differences between what the gateway sent and what was stored."""
    diffs = []
    for k, want in expected_values(obj).items():
        got = row.get(k)
        if isinstance(want, float) and isinstance(got, float):
            if abs(want - got) > 1e-9 * max(1.0, abs(want)):
                diffs.append(f"{k}: {got!r} != {want!r}")
        elif got != want:
            diffs.append(f"{k}: {got!r} != {want!r}")
    return diffs
