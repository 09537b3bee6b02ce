"""The pure transforms: each provider's flavour, status normalisation, and property tests with
inputs generated from Bifrost's own batch schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchlake.simulator import make_population, render
from batchlake.transforms import STATUS_VOCABULARY, flatten_objects
from batchlake.transforms.schema import BATCH_ERRORS, BATCH_METADATA, STAGED_BATCH_COLUMNS
from tests.bifrost_objects import gateway_objects
from tests.expect import compare_row

AS_OF = datetime(2026, 11, 27, tzinfo=UTC)


def one(obj: dict[str, Any], provider: str = "openai") -> pl.DataFrame:
    flat = flatten_objects([obj], provider, as_of=AS_OF)
    assert not flat.rejects, flat.rejects
    return flat.batches


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini", "bedrock", "azure"])
def test_each_provider_flavour_flattens_to_its_values(provider: str) -> None:
    now = int(AS_OF.timestamp())
    plans = [p for p in make_population(400, now, seed=1) if p.provider == provider]
    objs = [render(p, now + k * 3600, retrieve=bool(k % 2)) for k in range(3) for p in plans]
    flat = flatten_objects(objs, provider, as_of=AS_OF)
    assert not flat.rejects
    latest = {o["id"]: o for o in objs}  # duplicates keep the last occurrence
    assert flat.duplicates == len(objs) - len(latest)
    assert flat.batches.height == len(latest)
    assert flat.batches.columns == list(STAGED_BATCH_COLUMNS)
    for row in flat.batches.to_dicts():
        assert not compare_row(latest[row["batch_id"]], row)
    n_err = sum(len((o.get("errors") or {}).get("data") or []) for o in latest.values())
    assert flat.errors.height == n_err and flat.errors.columns == BATCH_ERRORS.column_names()
    assert flat.metadata.columns == BATCH_METADATA.column_names()


@pytest.mark.parametrize(("obj", "norm", "terminal"), [
    ({"status": "canceled"}, "cancelled", True),
    ({"status": "cancelled"}, "cancelled", True),
    ({"status": "ended", "processing_status": "ended"}, "completed", True),
    ({"status": "ended", "cancelling_at": 1764000000}, "cancelled", True),
    ({"status": "ended", "request_counts": {"total": 5, "completed": 0, "failed": 0,
                                            "expired": 5}}, "expired", True),
    ({"status": "in_progress", "processing_status": "canceling"}, "cancelling", False),
    ({"status": "in_progress", "done": True}, "completed", True),
    ({"status": "in_progress", "done": False}, "in_progress", False),
    ({"status": "Validating"}, "validating", False),
    ({"status": "deleted"}, "deleted", True),
    ({"status": "something_new"}, "unknown", False),
])
def test_status_normalisation(obj: dict[str, Any], norm: str, terminal: bool) -> None:
    base = {"id": "b", "request_counts": {"total": 5, "completed": 5, "failed": 0}}
    row = one({**base, **obj}).row(0, named=True)
    assert (row["status_norm"], row["is_terminal"]) == (norm, terminal)
    assert row["status_norm"] in STATUS_VOCABULARY


@pytest.mark.parametrize(("window", "seconds"), [
    ("24h", 86400), ("30m", 1800), ("2d", 172800), ("3600", 3600), ("soon", None)])
def test_completion_window_parsing(window: str, seconds: int | None) -> None:
    obj = {"id": "b", "status": "in_progress", "completion_window": window,
           "created_at": 1764000000, "request_counts": {"total": 1, "completed": 0, "failed": 0}}
    assert one(obj).row(0, named=True)["completion_window_s"] == seconds


def test_iso_timestamps_are_accepted_and_zero_means_unset() -> None:
    obj = {"id": "b", "status": "completed", "created_at": "2026-11-20T10:00:00Z",
           "expires_at": 0, "request_counts": {"total": 1, "completed": 1, "failed": 0}}
    row = one(obj).row(0, named=True)
    assert row["created_at"] == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert row["expires_at"] is None


def test_unknown_fields_are_kept_in_extras_and_raw_is_dropped() -> None:
    obj = {"id": "b", "status": "completed", "brand_new_field": {"x": 1},
           "request_counts": {"total": 1, "completed": 1, "failed": 0},
           "extra_fields": {"request_type": "batch_retrieve", "latency": 5, "chunk_index": 0,
                            "future_thing": [1, 2],
                            "raw_request": {"headers": {"Authorization": "Bearer sk-bf-x"}}}}
    row = one(obj).row(0, named=True)
    assert json.loads(row["extras"]) == {"brand_new_field": {"x": 1},
                                         "extra_fields.future_thing": [1, 2]}
    assert row["raw_request"] is None
    flat = flatten_objects([obj], "openai", as_of=AS_OF, store_raw=True)
    raw = flat.batches.row(0, named=True)["raw_request"]
    assert "sk-bf-x" not in raw and "[REDACTED]" in raw


def test_secrets_in_reject_payloads_are_redacted() -> None:
    obj = {"id": "b", "status": 5, "api_key": "sk-live-abcdefgh123",
           "extra_fields": {"raw_request": {"Authorization": "Bearer sk-bf-secret"}}}
    flat = flatten_objects([obj], "openai", as_of=AS_OF)
    payload = flat.rejects[0]["payload"]
    assert "sk-live-abcdefgh123" not in payload and "sk-bf-secret" not in payload


def _any_json() -> st.SearchStrategy[Any]:
    scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | \
        st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
    return st.recursive(scalars, lambda c: st.lists(c, max_size=3) |
                        st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=10)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(gateway_objects())
def test_any_schema_valid_object_becomes_a_row_holding_its_values(obj: dict[str, Any]) -> None:
    flat = flatten_objects([obj], "openai", as_of=AS_OF)
    assert flat.batches.height + len(flat.rejects) == 1
    if flat.rejects:
        # The schema allows what batchlake must refuse to store as unix seconds.
        reason = flat.rejects[0]["reason"]
        assert any(w in reason for w in ("negative timestamp", "milliseconds", "id:")), reason
        return
    row = flat.batches.row(0, named=True)
    assert not compare_row(obj, row)
    n_errors = len((obj.get("errors") or {}).get("data") or [])
    assert flat.errors.height == n_errors == row["errors_count"]
    assert flat.metadata.height == len(obj.get("metadata") or {})


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(gateway_objects().map(lambda o: _mutate(o)), _any_json()))
def test_transform_never_raises_on_any_json(obj: Any) -> None:
    flat = flatten_objects([obj, {"id": "ok", "status": "completed", "request_counts": {
        "total": 1, "completed": 1, "failed": 0}}], "gemini", as_of=AS_OF)
    assert flat.batches.height + len(flat.rejects) == 2
    assert "ok" in flat.batches.get_column("batch_id").to_list()
    for r in flat.rejects:
        assert r["reason"] and r["payload"]


def _mutate(obj: dict[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    out["request_counts"] = {k: str(v) for k, v in (obj.get("request_counts") or {}).items()}
    return out
