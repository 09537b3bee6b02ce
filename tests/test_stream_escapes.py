"""Results bodies decode whatever their escaping and wherever the transport cuts them.

Bodies are built from the providers' line shapes (../shared/bifrost/batch-results.md) with
hostile strings in every string field, encoded the ways real gateways and provider files are
(raw UTF-8, ``ensure_ascii``, Go's HTML-escaping encoder as Bifrost answers, ``\\/`` escapes,
indented), cut into chunks anywhere, and read with a tiny read size so that every cut falls at
the end of the parser's buffer. The items must be exactly ``json.loads`` of the whole body.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from batchlake.gateway.stream import BodyError, ResultsBody, iter_results

# Every character class an escape can stand for: HTML-escaped by Go, line and paragraph
# separators, control characters (\u0000 included), quotes and backslashes, slashes,
# non-BMP characters (a surrogate pair under ensure_ascii), plain non-ASCII.
NASTY = "<>&\u2028\u2029\x00\x01\x1f\"\\/\u00e9\u4e2d\U0001f600\ufffd\t\n\r "
hostile = st.text(alphabet=st.sampled_from(NASTY) | st.characters(codec="utf-8"), max_size=40)
tokens = st.integers(0, 2**31)


def _openai(s: list[str], n: list[int]) -> dict[str, Any]:
    return {"custom_id": s[0], "response": {"status_code": 200, "request_id": s[1], "body": {
        "id": s[2], "object": "chat.completion", "model": s[3],
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": s[4]}}],
        "usage": {"prompt_tokens": n[0], "completion_tokens": n[1],
                  "total_tokens": n[0] + n[1], "prompt_tokens_details": {"cached_tokens": n[2]}}}}}


def _openai_error(s: list[str], n: list[int]) -> dict[str, Any]:
    return {"custom_id": s[0], "response": {"status_code": 400, "request_id": s[1], "body": {
        "error": {"message": s[2], "type": s[3], "param": None, "code": s[4]}}}}


def _anthropic(s: list[str], n: list[int]) -> dict[str, Any]:
    return {"custom_id": s[0], "result": {"type": "succeeded", "message": {
        "id": s[1], "type": "message", "role": "assistant", "model": s[2],
        "content": [{"type": "text", "text": s[3]}], "stop_reason": s[4],
        "usage": {"input_tokens": n[0], "output_tokens": n[1],
                  "cache_read_input_tokens": n[2], "cache_creation_input_tokens": 0}}}}


def _anthropic_error(s: list[str], n: list[int]) -> dict[str, Any]:
    return {"custom_id": s[0], "result": {"type": "errored", "error": {
        "type": "error", "error": {"type": s[1], "message": s[2], "details": {"x": s[3]}},
        "request_id": None}}}


def _gemini(s: list[str], n: list[int]) -> dict[str, Any]:
    return {"custom_id": s[0], "response": {"status_code": 200, "body": {
        "text": s[1], "finish_reason": s[2],
        "usage": {"prompt_tokens": n[0], "completion_tokens": n[1],
                  "total_tokens": n[0] + n[1] + n[2]}}}}


def _bedrock(s: list[str], n: list[int]) -> dict[str, Any]:
    return {"custom_id": s[0], "response": {"status_code": 200, "body": {
        "output": {"message": {"role": "assistant", "content": [{"text": s[1]}]}},
        "stopReason": s[2], "usage": {"inputTokens": n[0], "outputTokens": n[1],
                                      "cacheReadInputTokenCount": n[2]}}}}


def _expired(s: list[str], n: list[int]) -> dict[str, Any]:
    return {"custom_id": s[0], "response": None,
            "error": {"code": "batch_expired", "message": s[1]}}


SHAPES = [_openai, _openai_error, _anthropic, _anthropic_error, _gemini, _bedrock, _expired]
item = st.builds(lambda shape, s, n: shape(s, n), st.sampled_from(SHAPES),
                 st.lists(hostile, min_size=5, max_size=5), st.lists(tokens, min_size=3,
                                                                     max_size=3))


def go_html(text: str) -> str:
    """What Go's encoding/json Encoder (HTML escaping on, Bifrost's SendJSON) writes for the
    same document: <, >, & and U+2028/U+2029 escaped. Those characters can only stand inside
    strings in JSON text, so replacing them in the text is exact."""
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text + "\n"  # the Encoder ends the body with a newline


def encode(doc: dict[str, Any], how: str) -> bytes:
    compact = {"separators": (",", ":")}
    if how == "raw":
        return json.dumps(doc, ensure_ascii=False, **compact).encode()  # type: ignore[arg-type]
    if how == "ascii":
        return json.dumps(doc, **compact).encode()  # type: ignore[arg-type]
    if how == "go-html":
        return go_html(json.dumps(doc, ensure_ascii=False, **compact)).encode()  # type: ignore[arg-type]
    if how == "slashes":  # "\/": allowed, written by some encoders (PHP's, by default)
        return json.dumps(doc, **compact).replace("/", "\\/").encode()  # type: ignore[arg-type]
    if how == "indented":
        return json.dumps(doc, indent=2).encode()
    if how == "spaced":  # Python's default separators: ", " and ": "
        return json.dumps(doc).encode()
    if how == "custom-id-last":  # another writer's key order: no custom_id to find items by
        doc = {**doc, "results": [{**{k: v for k, v in it.items() if k != "custom_id"},
                                   "custom_id": it.get("custom_id")} if isinstance(it, dict)
                                  else it for it in doc["results"]]}
        return json.dumps(doc, ensure_ascii=False, **compact).encode()  # type: ignore[arg-type]
    raise AssertionError(how)


ENCODINGS = ["raw", "ascii", "go-html", "slashes", "indented", "spaced", "custom-id-last"]


def chunked(raw: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(raw) + 1) for c in cuts} | {0, len(raw)})
    return [raw[a:b] for a, b in itertools.pairwise(points)]


def read(chunks: list[bytes], read_size: int) -> tuple[list[Any], ResultsBody]:
    body = ResultsBody()
    return list(iter_results(chunks, body, read_size=read_size)), body


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(item, max_size=8), st.sampled_from(ENCODINGS),
       st.lists(st.integers(0, 10**6), max_size=40), st.integers(1, 64))
@example([_openai(["a<b>&c"] * 5, [1, 2, 3])], "go-html", [], 1)  # one byte at a time
def test_every_encoding_and_every_cut_gives_the_items_of_json_loads(
        items: list[dict[str, Any]], how: str, cuts: list[int], read_size: int) -> None:
    doc = {"batch_id": "batch_\u00e9<1>", "results": items,
           "extra_fields": {"request_type": "batch_results", "provider": "openai"}}
    raw = encode(doc, how)
    expected = json.loads(raw)
    assert isinstance(expected, dict)
    got, body = read(chunked(raw, cuts), read_size)
    assert got == expected["results"]
    assert body.complete and body.batch_id == expected["batch_id"]
    assert body.extra_fields == expected["extra_fields"]


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(item, min_size=1, max_size=5), st.sampled_from(ENCODINGS), st.data())
def test_one_byte_chunks_read_every_encoding(items: list[dict[str, Any]], how: str,
                                             data: st.DataObject) -> None:
    raw = encode({"batch_id": "b", "results": items}, how)
    got, _ = read([raw[i:i + 1] for i in range(len(raw))], data.draw(st.integers(1, 8)))
    assert got == json.loads(raw)["results"]


def test_a_large_html_escaped_body_loads_at_the_default_read_size_whatever_the_chunks() -> None:
    # The reported case: ~1.25 MB of Go-escaped model output (HTML and code) failed at every
    # chunk size from 1,000 B to 100 KB.
    answer = "<div class=\"x\">a && b</div> <script>if (a < b && c > d) {}</script> " * 8
    items = [_openai([f"request-{i}", f"req_{i}", f"chatcmpl-{i}", "gpt-4o-2024-08-06",
                      answer], [10, 20, 0]) for i in range(2_000)]
    raw = encode({"batch_id": "b", "results": items}, "go-html")
    assert len(raw) > 1_200_000 and raw.count(b"\\u003c") > 30_000
    for size in (1_000, 4_096, 10_000, 65_536, 100_000, 262_144):
        body = ResultsBody()
        got = list(iter_results([raw[i:i + size] for i in range(0, len(raw), size)], body))
        assert got == items and body.complete, size


@pytest.mark.parametrize("how", ENCODINGS)
def test_a_truly_broken_body_is_still_an_error_after_the_items_before_it(how: str) -> None:
    items = [_openai([f"r{i}", "q", "c", "m", "<ok> & \u2028"], [1, 2, 0]) for i in range(50)]
    raw = encode({"batch_id": "b", "results": items}, how)
    # break the 31st item: a value that cannot be JSON, far from any cut
    at = raw.index(b'"r30"')
    broken = raw[:at] + b'"r30" "oops": ,' + raw[at + 5:]
    body = ResultsBody()
    seen: list[Any] = []
    with pytest.raises(BodyError):
        for got in iter_results([broken[i:i + 7] for i in range(0, len(broken), 7)], body,
                                read_size=5):
            seen.append(got)
    assert seen == items[:30]


def test_a_lone_surrogate_escape_becomes_the_replacement_character_and_the_line_loads() -> None:
    # Python's json (ensure_ascii) writes a lone surrogate as \ud800: valid JSON, but no
    # character UTF-8 can hold. It reads as U+FFFD (what Go's encoder writes for invalid text)
    # and the line flattens; a surrogate pair still reads as its one character.
    from batchlake.transforms import flatten_results

    raw = (b'{"batch_id":"b","results":[{"custom_id":"\\ud800x","response":{"status_code":'
           b'200,"body":{"model":"gpt-4o","usage":{"prompt_tokens":1}}}},'
           b'{"custom_id":"\\ud83d\\ude00"}]}')
    got, _ = read([raw[i:i + 3] for i in range(0, len(raw), 3)], 2)
    assert [g["custom_id"] for g in got] == ["\ufffdx", "\U0001f600"]
    flat = flatten_results(got, 0, "openai", "b", "gpt-4o", store_body=False)
    assert flat.frame.get_column("custom_id").to_list() == ["\ufffdx", "\U0001f600"]


def test_integers_past_64_bits_and_every_layout_stay_exact() -> None:
    # orjson would read 2**70 as a float: such items take the exact path, in every layout
    items = [{"custom_id": f"r{i}", "response": {"status_code": 200, "body": {
        "usage": {"prompt_tokens": 2**70 + i, "completion_tokens": -(2**65)}}}}
        for i in range(30)]
    for how in ENCODINGS:
        raw = encode({"batch_id": "b", "results": items}, how)
        got, _ = read([raw[i:i + 50] for i in range(0, len(raw), 50)], 16)
        assert got == items, how
