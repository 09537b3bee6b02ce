"""The simulated gateway speaks Bifrost's batch API: its bodies validate against Bifrost's
schema, it requires `provider`, checks keys, and moves batches through their lifecycle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import jsonschema
import pytest

from batchlake.simulator import SimGateway

# shared/ sits beside the clone (CI, /work/main) or further up (a worktree in /work/wt/).
SCHEMA_PATH = next(
    (p for p in (d / "shared" / "bifrost" / "bifrost_batch.schema.json"
                 for d in Path(__file__).resolve().parents[1:]) if p.exists()),
    Path(__file__).resolve().parents[2] / "shared" / "bifrost" / "bifrost_batch.schema.json")


def validator(definition: str) -> jsonschema.Draft202012Validator:
    if not SCHEMA_PATH.exists():
        pytest.skip(f"Bifrost schema not found at {SCHEMA_PATH}")
    schema = json.loads(SCHEMA_PATH.read_text())
    schema.pop("anyOf")
    return jsonschema.Draft202012Validator({**schema, "$ref": f"#/$defs/{definition}"})


def errors(v: jsonschema.Draft202012Validator, body: Any) -> list[str]:
    return [f"{list(e.path)}: {e.message[:150]}" for e in v.iter_errors(body)]


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini", "bedrock", "azure"])
def test_list_and_retrieve_bodies_validate_against_bifrost_schema(provider: str) -> None:
    lists, one = validator("BatchListResponse"), validator("BatchRetrieveResponse")
    with SimGateway(150, seed=21, future_share=0.2) as gw, \
            httpx.Client(base_url=gw.base_url) as c:
        for _ in range(3):  # several points of the lifecycle
            after = None
            while True:
                params: dict[str, Any] = {"provider": provider, "limit": 30}
                if after:
                    params["after"] = after
                body = c.get("/v1/batches", params=params).json()
                assert not errors(lists, body)
                for o in body["data"][:5]:
                    r = c.get(f"/v1/batches/{quote(o['id'], safe='')}",
                              params={"provider": provider})
                    assert r.status_code == 200 and not errors(one, r.json())
                if not body.get("has_more"):
                    break
                after = body.get("next_cursor") or body.get("last_id")
            gw.advance(8 * 3600)


def test_error_bodies_validate_and_provider_is_required(gateway: SimGateway) -> None:
    v = validator("BifrostError")
    with httpx.Client(base_url=gateway.base_url) as c:
        r = c.get("/v1/batches")
        assert r.status_code == 400 and not errors(v, r.json())
        assert r.json()["error"]["message"] == "provider query parameter is required"
        r = c.get("/v1/batches/batch_missing", params={"provider": "openai"})
        assert r.status_code == 404 and not errors(v, r.json())


def test_api_key_is_checked(make_gateway: Any) -> None:
    gw = make_gateway(10, api_key="sk-bf-k")
    with httpx.Client(base_url=gw.base_url) as c:
        assert c.get("/v1/batches", params={"provider": "openai"}).status_code == 401
        ok = c.get("/v1/batches", params={"provider": "openai"},
                   headers={"Authorization": "Bearer sk-bf-k"})
        assert ok.status_code == 200


def test_population_has_each_providers_quirks(gateway: SimGateway) -> None:
    truth = {p: gateway.truth(p) for p in gateway.providers}
    assert any(o["status"] == "ended" and o.get("processing_status") for o in truth["anthropic"])
    assert all(o["id"].startswith("batches/") and "operation_name" in o and "done" in o
               for o in truth["gemini"])
    assert all(o["id"].startswith("arn:aws:bedrock") and o["request_counts"]["total"] == 0
               for o in truth["bedrock"])
    everything = [o for objs in truth.values() for o in objs]
    assert any(len((o.get("errors") or {}).get("data") or []) > 1 for o in everything)
    hits = [o["extra_fields"].get("cache_debug") for o in everything
            if o["extra_fields"].get("cache_debug")]
    assert {h.get("hit_type") for h in hits} >= {"direct", "semantic", None}
    assert any("cache_debug" not in o["extra_fields"] for o in everything)


def test_batches_move_through_their_lifecycle(gateway: SimGateway) -> None:
    before = {o["id"]: o["status"] for o in gateway.truth("openai")}
    gateway.advance(12 * 3600)
    after = {o["id"]: o["status"] for o in gateway.truth("openai")}
    assert sum(before[k] != after[k] for k in before) > 0


def test_rich_metadata_gives_the_issues_kilobyte_objects_and_still_validates() -> None:
    lists = validator("BatchListResponse")
    with SimGateway(200, seed=3, providers=("openai",), metadata_keys=12) as gw, \
            httpx.Client(base_url=gw.base_url) as c:
        body = c.get("/v1/batches", params={"provider": "openai", "limit": 100}).json()
    assert not errors(lists, body)
    tagged = [o for o in body["data"] if o.get("metadata")]
    assert tagged and all(len(o["metadata"]) == 12 for o in tagged)
    sizes = [len(json.dumps(o, separators=(",", ":"))) for o in tagged]
    assert 800 <= sum(sizes) / len(sizes) <= 1300


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini", "bedrock", "azure"])
def test_wild_bodies_validate_against_bifrost_schema_too(provider: str) -> None:
    lists, one = validator("BatchListResponse"), validator("BatchRetrieveResponse")
    with SimGateway(400, seed=9, wild=True, metadata_keys=8) as gw, \
            httpx.Client(base_url=gw.base_url) as c:
        dressed = 0
        for _ in range(2):
            body = c.get("/v1/batches", params={"provider": provider, "limit": 200}).json()
            assert not errors(lists, body)
            dressed += sum("raw_request" in o["extra_fields"] for o in body["data"])
            for o in body["data"][:5]:
                r = c.get(f"/v1/batches/{quote(o['id'], safe='')}",
                          params={"provider": provider})
                assert r.status_code == 200 and not errors(one, r.json())
            gw.advance(12 * 3600)
        assert dressed > 0


def test_the_wild_gateway_runs_from_the_cli() -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-m", "batchlake", "gateway", "--port", "0",
                             "--batches", "200", "--wild"], stderr=subprocess.PIPE, text=True,
                            cwd=root)
    try:
        assert proc.stderr is not None
        port = int(proc.stderr.readline().split("http://127.0.0.1:")[1].split()[0])
        body = httpx.get(f"http://127.0.0.1:{port}/v1/batches",
                         params={"provider": "anthropic", "limit": 100}, timeout=10).json()
        assert any("raw_response" in o["extra_fields"] for o in body["data"])
        assert any((o.get("errors") or {}).get("data") for o in body["data"])
    finally:
        proc.terminate()
        proc.wait(timeout=10)
