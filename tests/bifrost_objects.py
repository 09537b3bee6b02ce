"""Batch objects generated from Bifrost's own batch schema (a hypothesis strategy), for the
property tests. The schema lives in shared/bifrost beside the clone; without it they skip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st

from tests.schema_strategy import from_schema

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "shared" / "bifrost" / \
    "bifrost_batch.schema.json"


def _schema() -> dict[str, Any]:
    if not SCHEMA_PATH.exists():  # CI lays shared/ beside the clone; say so if it is not
        pytest.skip(f"Bifrost schema not found at {SCHEMA_PATH}")
    return dict(json.loads(SCHEMA_PATH.read_text()))


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """Replace local $refs by their definitions (hypothesis-jsonschema resolves none here)."""
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline(defs[node["$ref"].split("/")[-1]], defs)
        return {k: _inline(v, defs) for k, v in node.items()
                if k not in ("$comment", "examples", "$id", "$schema")}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


_BATCH_SCHEMA: dict[str, Any] | None = None


def batch_schema() -> dict[str, Any]:
    global _BATCH_SCHEMA
    if _BATCH_SCHEMA is None:
        s = _schema()
        _BATCH_SCHEMA = _inline(s["$defs"]["BatchRetrieveResponse"], s["$defs"])
    return _BATCH_SCHEMA


def gateway_objects() -> st.SearchStrategy[Any]:
    """Batch objects as the schema allows them. Built once, at the first draw (a test
    without the schema skips then, not at import): see tests/schema_strategy.py."""
    return _OBJECTS


_OBJECTS: st.SearchStrategy[Any] = st.deferred(lambda: from_schema(batch_schema()))
