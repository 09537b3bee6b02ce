"""sync --inputs over real HTTP: each finished batch's input file read once into
batch_requests (ids, models, max_tokens, sizes, hashes; the prompts only with
--store-request-bodies, redacted), joined to the results in v_request_outcomes and
v_unanswered_requests; a file the gateway cannot return is settled with the reason."""

from __future__ import annotations

from typing import Any

import orjson

import batchlake
from tests.conftest import rows
from tests.retry_fixtures import (
    KEY,
    content_requests,
    finished_plans,
    input_lines,
    prompt_in_database,
)


def _sync(gw: Any, db: str, **kw: Any) -> batchlake.SyncReport:
    return batchlake.sync(base_url=gw.base_url, providers=list(gw.providers), db=db,
                          results_budget=0, inputs=True, **kw)


def test_inputs_are_read_once_and_joined_to_the_results(make_gateway: Any,
                                                       db_path: str) -> None:
    gw = make_gateway(100, seed=5, providers=("openai", "bedrock", "gemini", "anthropic"))
    rep = _sync(gw, db_path)
    said = {r.provider: w for r in rep.results for w in r.warnings if w.startswith("inputs:")}
    assert "batches' input files read" in said["openai"]
    assert "unavailable" in said["gemini"] and "direct content download" in said["gemini"]
    assert "anthropic" not in said and content_requests(gw, "anthropic") == 0
    for provider in ("openai", "bedrock"):
        plans = finished_plans(gw, provider)
        stored = rows(db_path, "SELECT batch_id, count(*) FROM batch_requests WHERE "
                               "provider = ? GROUP BY 1", [provider])
        assert dict(stored) == {p.id: len(input_lines(gw, p)) for p in plans}
    # every request once, with what the analytics read
    plan = finished_plans(gw, "openai")[0]
    first = orjson.loads(input_lines(gw, plan)[0])
    got = rows(db_path, "SELECT custom_id, endpoint, model, max_tokens, body IS NULL FROM "
                        "batch_requests WHERE batch_id = ? AND line = 0", [plan.id])
    assert got == [(first["custom_id"], first["url"], first["body"]["model"],
                    first["body"].get("max_tokens", first["body"].get("max_output_tokens")),
                    True)]
    assert prompt_in_database(db_path) == []
    # never answered: the requests with no line at all, from the gateway's own truth
    unanswered = set(rows(db_path, "SELECT batch_id, custom_id FROM v_unanswered_requests "
                                   "WHERE provider = 'openai'"))
    truth = set()
    for p in finished_plans(gw, "openai"):
        body = gw.results("openai", p.id)
        answered = {ln["custom_id"] for ln in orjson.loads(body)["results"]} if body else set()
        truth |= {(p.id, orjson.loads(ln)["custom_id"]) for ln in input_lines(gw, p)
                  if orjson.loads(ln)["custom_id"] not in answered}
    assert unanswered == truth and truth
    outcomes = rows(db_path, "SELECT sum(requests), sum(succeeded + failed + never_answered) "
                             "FROM v_request_outcomes WHERE provider = 'openai'")[0]
    assert outcomes[0] == outcomes[1] > 0
    # a second sync reads no input again
    before = content_requests(gw)
    _sync(gw, db_path)
    assert content_requests(gw) == before


def test_request_bodies_are_kept_only_when_asked_and_redacted(make_gateway: Any,
                                                             db_path: str) -> None:
    gw = make_gateway(40, seed=5, providers=("openai",))
    plan = finished_plans(gw, "openai")[0]
    lines = input_lines(gw, plan)
    secret = orjson.loads(lines[0])
    secret["body"]["api_key"] = "sk-live-canary-123456789"
    gw.files.uploads[("openai", f"file-{plan.id[-10:]}")] = b"\n".join(
        [orjson.dumps(secret), *lines[1:]])
    _sync(gw, db_path, store_request_bodies=True)
    body = rows(db_path, "SELECT body FROM batch_requests WHERE batch_id = ? AND line = 0",
                [plan.id])[0][0]
    assert "sk-live-canary" not in body and orjson.loads(body)["api_key"] == "[REDACTED]"
    assert prompt_in_database(db_path) == ["batch_requests.body"]
    assert rows(db_path, "SELECT count(DISTINCT body_hash) = count(*) FROM batch_requests "
                         "WHERE batch_id = ?", [plan.id]) == [(True,)]
    assert KEY["openai"] == "custom_id"
