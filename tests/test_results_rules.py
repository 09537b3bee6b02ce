"""The results rules, one by one (docs/costs.md): outcome, error, tokens per provider shape,
model, rejects; the streaming parser; price files and the shipped table."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchlake.common import ConfigError
from batchlake.gateway.stream import BodyError, ResultsBody, iter_results
from batchlake.transforms import parse_price_csv, shipped_prices
from batchlake.transforms.result_lines import LineReject, flatten_results, result_row


def row(item: dict[str, Any], model: str | None = "batch-model") -> dict[str, Any]:
    return result_row(item, model, False)


def tokens(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r["input_tokens"], r["cached_input_tokens"], r["cache_write_tokens"],
            r["output_tokens"], r["reasoning_tokens"])


# -- outcome ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("item", "outcome"), [
    ({"result": {"type": "succeeded"}}, "succeeded"),
    ({"result": {"type": "errored"}}, "errored"),
    ({"result": {"type": "expired"}}, "expired"),
    ({"result": {"type": "canceled"}}, "canceled"),
    ({"result": {"type": "weird"}}, "errored"),
    ({"result": {}}, "errored"),
    ({"result": {"type": "succeeded"}, "error": {"code": "batch_expired"}}, "succeeded"),
    ({"error": {"code": "batch_expired", "message": "m"}}, "expired"),
    ({"error": {"code": "batch_cancelled"}}, "canceled"),
    ({"error": {"code": "batch_canceled"}}, "canceled"),
    ({"error": {"code": "server_error"}, "response": {"status_code": 200}}, "errored"),
    ({"response": {"status_code": 200}}, "succeeded"),
    ({"response": {"status_code": 204}}, "succeeded"),
    ({"response": {"status_code": 429}}, "errored"),
    ({"response": None}, "errored"),
    ({}, "errored"),
])
def test_outcome_rules(item: dict[str, Any], outcome: str) -> None:
    assert row({"custom_id": "c", **item})["outcome"] == outcome


def test_error_from_error_then_anthropic_nested_then_body() -> None:
    r = row({"error": {"code": "batch_expired", "message": "too late"},
             "response": {"status_code": 400, "body": {"error": {"code": "x", "message": "y"}}}})
    assert (r["error_code"], r["error_message"]) == ("batch_expired", "too late")
    nested = {"result": {"type": "errored", "error": {
        "type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens",
                                   "details": {}}, "request_id": "req_1"}}}
    r = row(nested)
    assert (r["error_code"], r["error_message"], r["request_id"]) == (
        "invalid_request_error", "max_tokens", "req_1")
    # Bifrost's flat copy may be empty: the nested one still speaks
    r = row({**nested, "error": {"code": "", "message": ""}})
    assert (r["error_code"], r["error_message"]) == ("invalid_request_error", "max_tokens")
    r = row({"result": {"type": "errored", "error": {"type": "overloaded_error",
                                                      "message": "busy"}}})
    assert (r["error_code"], r["error_message"]) == ("overloaded_error", "busy")
    r = row({"response": {"status_code": 400, "body": {"error": {
        "message": "bad", "type": "invalid_request_error", "code": None}}}})
    assert (r["error_code"], r["error_message"]) == ("invalid_request_error", "bad")
    r = row({"response": {"status_code": 400, "body": {"error": {
        "message": "ctx", "type": "invalid_request_error", "code": "context_length_exceeded"}}}})
    assert r["error_code"] == "context_length_exceeded"


# -- tokens per shape ------------------------------------------------------------------------
def _body(body: dict[str, Any]) -> dict[str, Any]:
    return {"response": {"status_code": 200, "body": body}}


@pytest.mark.parametrize(("item", "want"), [
    # OpenAI chat: cached inside prompt_tokens, reasoning inside completion_tokens
    (_body({"model": "gpt-4o-mini-2024-07-18", "usage": {
        "prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150,
        "prompt_tokens_details": {"cached_tokens": 40},
        "completion_tokens_details": {"reasoning_tokens": 20}}}), (100, 40, 0, 50, 20)),
    # embeddings
    (_body({"usage": {"prompt_tokens": 8, "total_tokens": 8}}), (8, 0, 0, 0, 0)),
    # Responses API: cached inside input_tokens
    (_body({"object": "response", "usage": {
        "input_tokens": 300, "input_tokens_details": {"cached_tokens": 100},
        "output_tokens": 70, "output_tokens_details": {"reasoning_tokens": 30},
        "total_tokens": 370}}), (300, 100, 0, 70, 30)),
    # Anthropic: input excludes cache reads and writes
    ({"result": {"type": "succeeded", "message": {"model": "claude-sonnet-4-5-20250929",
                                                   "usage": {
        "input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 200,
        "cache_read_input_tokens": 1000, "service_tier": "batch"}}}}, (1210, 1000, 200, 5, 0)),
    # Gemini through Bifrost: the total counts thinking (prompt 8, candidates 11, total 848)
    (_body({"text": "x", "usage": {"prompt_tokens": 8, "completion_tokens": 11,
                                   "total_tokens": 848}}), (8, 0, 0, 840, 829)),
    # Gemini's native usageMetadata
    (_body({"usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 11,
                              "thoughtsTokenCount": 829, "totalTokenCount": 848,
                              "cachedContentTokenCount": 3}}), (8, 3, 0, 840, 829)),
    # Bedrock Claude
    (_body({"model": "claude-3-haiku-20240307", "usage": {
        "input_tokens": 20, "output_tokens": 7, "cache_read_input_tokens": 5}}),
     (25, 5, 0, 7, 0)),
    # Bedrock Llama: counts at the top of the body
    (_body({"generation": "x", "prompt_token_count": 12, "generation_token_count": 9}),
     (12, 0, 0, 9, 0)),
    # Bedrock Nova: cache counts not part of inputTokens
    (_body({"usage": {"inputTokens": 30, "outputTokens": 4, "totalTokens": 34,
                      "cacheReadInputTokenCount": 10, "cacheWriteInputTokenCount": 2}}),
     (42, 10, 2, 4, 0)),
    # omitted counters are 0
    (_body({"usage": {"prompt_tokens": 5}}), (5, 0, 0, 0, 0)),
    (_body({"usage": {}}), (0, 0, 0, 0, 0)),
])
def test_tokens_are_normalised_per_shape(item: dict[str, Any], want: tuple[int, ...]) -> None:
    assert tokens(row(item)) == want


def test_no_usage_means_null_tokens() -> None:
    for item in ({"error": {"code": "batch_expired"}}, _body({"text": "no usage"}),
                 {"result": {"type": "expired"}}):
        assert tokens(row(item)) == (None,) * 5


def test_model_from_the_body_else_the_batch() -> None:
    assert row(_body({"model": "gpt-4o-2024-08-06"}))["model"] == "gpt-4o-2024-08-06"
    assert row({"result": {"type": "succeeded", "message": {"model": "claude-x"}}})[
        "model"] == "claude-x"
    assert row(_body({"text": "gemini has none"}))["model"] == "batch-model"
    assert row({"error": {"code": "batch_expired"}}, None)["model"] is None


@pytest.mark.parametrize(("item", "reason"), [
    ("just a string", "not a JSON object"),
    ({"custom_id": 7}, "custom_id: expected a string"),
    ({"response": "oops"}, "response: expected an object"),
    ({"response": {"status_code": "200"}}, "status_code: expected an integer"),
    (_body({"usage": {"prompt_tokens": -3}}), "prompt_tokens: expected a non-negative"),
    (_body({"usage": {"prompt_tokens": 1.5}}), "prompt_tokens: expected a non-negative"),
    (_body({"usage": {"prompt_tokens": True}}), "prompt_tokens: expected a non-negative"),
    (_body({"usage": {"prompt_tokens": 2**64}}), "prompt_tokens: expected a non-negative"),
    (_body({"usage": "lots"}), "usage: expected an object"),
    ({"result": {"type": "succeeded", "message": []}}, "result.message: expected an object"),
])
def test_bad_lines_are_rejected_with_their_reason(item: Any, reason: str) -> None:
    with pytest.raises(LineReject, match=reason):
        result_row(item, None, False)


def test_a_body_of_good_and_bad_lines_keeps_every_good_line_at_its_position() -> None:
    items = [_body({"usage": {"prompt_tokens": 1}}), "bad", {"custom_id": "x"}, 42,
             _body({"usage": {"prompt_tokens": 2}})]
    flat = flatten_results(items, 10, "openai", "b1", "m")
    assert flat.frame["line"].to_list() == [10, 12, 14]
    assert flat.frame["input_tokens"].to_list() == [1, None, 2]
    assert [r["reason"][:15] for r in flat.rejects] == ["results line 11", "results line 13"]
    assert all(r["batch_id"] == "b1" and r["payload"] for r in flat.rejects)


def test_bodies_are_kept_only_when_asked_and_redacted() -> None:
    item = _body({"model": "m", "usage": {"prompt_tokens": 1},
                  "choices": [{"message": {"content": "answer"}}],
                  "api_key": "sk-bf-supersecret-value"})
    assert result_row(item, None, False)["body"] is None
    body = json.loads(result_row(item, None, True)["body"])
    assert body["choices"][0]["message"]["content"] == "answer"
    assert "supersecret" not in json.dumps(body)


# -- the streaming parser --------------------------------------------------------------------
def _parse(raw: bytes, size: int) -> tuple[list[Any], ResultsBody]:
    body = ResultsBody()
    return list(iter_results([raw[i:i + size] for i in range(0, len(raw), size)], body)), body


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=30)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(json_values, max_size=20), st.integers(1, 300), st.booleans(),
       st.sampled_from(["first", "last"]))
def test_the_stream_yields_every_item_at_any_chunking(items: list[Any], size: int,
                                                      pretty: bool, where: str) -> None:
    doc: dict[str, Any] = {"extra_fields": {"parse_errors": [{"line": 2}]}}
    doc = {"results": items, **doc} if where == "first" else {**doc, "results": items,
                                                              "batch_id": "b"}
    raw = json.dumps(doc, indent=2 if pretty else None, ensure_ascii=False).encode()
    got, body = _parse(raw, size)
    assert got == items and body.complete and body.items == len(items)
    assert body.extra_fields == {"parse_errors": [{"line": 2}]}


MARKER = '},{"custom_id":'
go_items = st.lists(st.fixed_dictionaries(
    {"custom_id": st.text(max_size=8) | st.just(MARKER)},
    optional={"response": json_values,
              "nested": st.lists(st.fixed_dictionaries({"custom_id": st.just(MARKER) |
                                                        st.integers()}), max_size=3),
              "text": st.sampled_from([MARKER, "}]", '"},{"', "\\"])}), max_size=15)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(go_items, st.integers(1, 200))
def test_compact_go_style_bodies_take_the_fast_path_and_stay_exact(
        items: list[Any], size: int) -> None:
    # Go's encoder: compact, custom_id first; nested objects and strings hold the very
    # marker the fast path looks for
    raw = json.dumps({"batch_id": "b", "results": items}, separators=(",", ":"),
                     ensure_ascii=False).encode()
    got, body = _parse(raw, size)
    assert got == items and body.complete


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(json_values, min_size=1, max_size=10), st.data())
def test_a_body_cut_anywhere_raises_after_the_whole_items(items: list[Any],
                                                          data: st.DataObject) -> None:
    raw = json.dumps({"batch_id": "b", "results": items}).encode()
    cut = data.draw(st.integers(0, len(raw) - 1))
    body = ResultsBody()
    seen: list[Any] = []
    with pytest.raises(BodyError):
        for item in iter_results([raw[:cut]], body):
            seen.append(item)
    assert seen == items[:len(seen)]


def test_a_broken_item_is_an_error_naming_where() -> None:
    raw = b'{"results": [{"a": 1}, {"a": 2 "b": 3}, {"a": 4}]}'
    body = ResultsBody()
    with pytest.raises(BodyError, match="delimiter"):
        list(iter_results([raw], body))
    assert body.items == 1
    with pytest.raises(BodyError, match="expected"):
        list(iter_results([b'["not", "an object"]'], ResultsBody()))


# -- prices ----------------------------------------------------------------------------------
HEADER = "provider,model,input,output,cache_read,cache_write,batch_input,batch_output\n"


def test_a_prices_file_parses_with_empty_cells_as_not_given() -> None:
    df = parse_price_csv(HEADER + "openai,gpt-x,2,8,,,1,\n*,llama,0.1,0.2,,,,\n", "f")
    assert df.to_dicts()[0] == {"rank": 0, "provider": "openai", "model": "gpt-x",
                                "input": 2.0, "output": 8.0, "cache_read": None,
                                "cache_write": None, "batch_input": 1.0,
                                "batch_output": None, "source": "f", "price_model": None,
                                "batch_cache_read": None, "batch_cache_write": None}
    assert df["provider"].to_list() == ["openai", "*"]


@pytest.mark.parametrize(("text", "needle"), [
    ("provider,model,input\nopenai,x,1\n", "header must be"),
    (HEADER + "openai,x,abc,,,,,\n", "line 2: input 'abc' is not a number"),
    (HEADER + "openai,x,-1,,,,,\n", "finite rate of 0 or more"),
    (HEADER + "openai,,1,,,,,\n", "provider and model are required"),
    (HEADER + "openai,x,1\n", "3 cells"),
    (HEADER + "openai,x,1,,,,,\nopenai,x,2,,,,,\n", "listed twice"),
])
def test_a_bad_prices_file_is_one_line_naming_the_cell(text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as e:
        parse_price_csv(text, "prices.csv")
    assert "\n" not in str(e.value)


def test_the_shipped_table_is_what_genai_prices_resolves_each_name_to() -> None:
    got = shipped_prices([("openai", "gpt-4o-mini-2024-07-18"), ("azure", "gpt-4o-2024-08-06"),
                          ("bedrock", "claude-3-haiku-20240307"), ("gemini", "gemini-2.5-pro"),
                          ("openai", "no-such-model-anywhere")])
    by = {(r["provider"], r["model"]): r for r in got.prices.to_dicts()}
    assert ("openai", "no-such-model-anywhere") not in by  # unpriced: no row, never 0
    mini = by[("openai", "gpt-4o-mini-2024-07-18")]
    assert mini["price_model"] == "gpt-4o-mini" and mini["batch_input"] == mini["input"] / 2
    azure = by[("azure", "gpt-4o-2024-08-06")]
    assert azure["price_model"] == "gpt-4o" and azure["batch_input"] is None  # half-standard
    assert by[("bedrock", "claude-3-haiku-20240307")]["price_model"] == \
        "regional.anthropic.claude-3-haiku-20240307-v1:0"
    assert set(got.prices["rank"].to_list()) == {1}
    assert got.prices["source"][0].startswith("genai-prices ")
    tiers = {(r["rate"], r["start_tokens"]): r["value"] for r in got.tiers.to_dicts()
             if r["model"] == "gemini-2.5-pro"}
    assert tiers[("input", 200000)] == 2.5 and tiers[("batch_input", 200000)] == 1.25
