"""The pure rules of retry (transforms/retry_requests.py): input lines of each provider's
format read and written back byte for byte whatever their spelling, lines split on line
breaks only, files named apart and split at the limits, chains of retries walked, and which
request is offered again."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchlake.transforms import (
    MAX_FILE_REQUESTS,
    Attempt,
    FileGroup,
    InputLineError,
    file_name,
    group_for,
    offer,
    parse_input_line,
    retry_line,
    split_lines,
    tree_depths,
    tree_roots,
)

UGLY = ["ünïcödé 😀👩🏽‍💻", "<script>a && b > c</script>", 'quote " back \\ slash',
        "line\u2028sep\u2029para", "nul\u0000 bell\u0007", "\n\r\t", "🏳️‍🌈", ""]


def _line(obj: dict[str, object], style: int) -> bytes:
    if style == 0:
        return orjson.dumps(obj)
    if style == 1:
        return json.dumps(obj).encode()  # spaces, \\uXXXX escapes, surrogate pairs
    return json.dumps(obj, ensure_ascii=False, indent=None, separators=(", ", ": ")).encode()


@pytest.mark.parametrize("provider,obj,key,model,max_tokens", [
    ("openai", {"custom_id": "a-1", "method": "POST", "url": "/v1/chat/completions",
                "body": {"model": "gpt-4o-mini", "max_tokens": 64, "temperature": 0.2,
                         "messages": [{"role": "user", "content": "hi"}]}},
     "a-1", "gpt-4o-mini", 64),
    ("azure", {"body": {"model": "dep-4o", "input": "x", "max_output_tokens": 9},
               "url": "/v1/responses", "method": "POST", "custom_id": "z"},
     "z", "dep-4o", 9),
    ("anthropic", {"custom_id": "c", "params": {"model": "claude-sonnet-4", "max_tokens": 5,
                                                "messages": []}}, "c", "claude-sonnet-4", 5),
    ("gemini", {"key": "k-1", "request": {"contents": [], "generationConfig": {
        "maxOutputTokens": 77, "temperature": 1.0}}}, "k-1", "models/gemini-2.5-flash", 77),
    ("bedrock", {"recordId": "r-9", "modelInput": {"prompt": "p", "max_gen_len": 12}},
     "r-9", "meta.llama3", 12),
])
def test_each_providers_input_line_is_read_and_written_back_unchanged(
        provider: str, obj: dict[str, object], key: str, model: str, max_tokens: int) -> None:
    for style in range(3):
        raw = _line(obj, style)
        req = parse_input_line(provider, raw, 0, batch_model=model)
        assert (req.custom_id, req.model, req.max_tokens) == (key, model, max_tokens)
        assert retry_line(provider, req) == raw  # the bytes as they came


def test_an_openai_style_line_given_for_anthropic_becomes_custom_id_and_params() -> None:
    raw = orjson.dumps({"custom_id": "x", "method": "POST", "url": "/v1/messages",
                        "body": {"model": "claude-haiku-3.5", "max_tokens": 3,
                                 "messages": [{"role": "user", "content": UGLY[0]}]}})
    req = parse_input_line("anthropic", raw, 0)
    out = orjson.loads(retry_line("anthropic", req))
    assert list(out) == ["custom_id", "params"]
    assert out["params"] == orjson.loads(raw)["body"]


@pytest.mark.parametrize("provider,raw,why", [
    ("openai", b"{not json", "is not JSON"),
    ("openai", b"[1, 2]", "not a JSON object"),
    ("openai", b'{"key": "a", "request": {}}', "not in openai's batch input format"),
    ("gemini", b'{"custom_id": "a", "method": "POST", "url": "/v1/x", "body": {}}',
     "not in gemini's batch input format"),
    ("openai", b'{"custom_id": 5, "body": {}}', "no string custom_id"),
    ("bedrock", b'{"recordId": "a", "modelInput": "text"}', "modelInput is not an object"),
])
def test_lines_that_are_not_requests_say_why(provider: str, raw: bytes, why: str) -> None:
    with pytest.raises(InputLineError, match=why):
        parse_input_line(provider, raw, 3)


def test_a_keyless_gemini_line_is_named_as_bifrost_names_its_result() -> None:
    req = parse_input_line("gemini", b'{"request": {"contents": []}}', 7)
    assert req.custom_id == "request-7"


def test_integers_beyond_64_bits_are_kept_exactly() -> None:
    raw = b'{"custom_id":"big","method":"POST","url":"/v1/chat/completions","body":' \
          b'{"model":"m","seed":123456789012345678901234567890}}'
    req = parse_input_line("openai", raw, 0)
    assert retry_line("openai", req) == raw


@given(st.lists(st.tuples(st.text(min_size=1), st.sampled_from([*UGLY, "x"]),
                          st.integers(0, 2)), min_size=1, max_size=20),
       st.lists(st.integers(1, 50), max_size=5), st.booleans(), st.booleans())
@settings(max_examples=150, deadline=None)
def test_lines_split_on_line_breaks_only_wherever_the_chunks_end(
        items: list[tuple[str, str, int]], cuts: list[int], crlf: bool, bom: bool) -> None:
    lines = [_line({"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
                    "body": {"model": "m", "messages": [{"role": "user", "content": text}]}},
                   style) for cid, text, style in items]
    data = (b"\xef\xbb\xbf" if bom else b"") + (b"\r\n" if crlf else b"\n").join(lines) \
        + b"\n\n  \n"
    chunks, pos = [], 0
    for c in cuts:
        chunks.append(data[pos:pos + c])
        pos += c
    chunks.append(data[pos:])
    got = list(split_lines(chunks))
    assert got == lines
    assert [parse_input_line("openai", g, i).custom_id for i, g in enumerate(got)] == \
        [cid for cid, _, _ in items]


def test_files_are_named_apart_and_readable() -> None:
    a = FileGroup("batch_abc123", "/v1/chat/completions", "gpt-4o-mini")
    b = FileGroup("arn:aws:bedrock:us-east-1:1:model-invocation-job/abc123", None,
                  "us.amazon.nova-lite-v1:0")
    c = FileGroup("batches/abc123", None, "models/gemini-2.5-flash")
    names = {file_name("openai", a, 1), file_name("openai", a, 2), file_name("bedrock", b, 1),
             file_name("gemini", c, 1)}
    assert len(names) == 4
    assert file_name("openai", a, 1) == \
        f"retry_openai__batch_abc123-{file_name('openai', a, 1).split('-')[1][:6]}" \
        "__gpt-4o-mini__chat-completions__part1.jsonl"
    assert all("/" not in n and ":" not in n for n in names)


def test_groups_follow_what_each_provider_demands() -> None:
    line = orjson.dumps({"custom_id": "1", "method": "POST", "url": "/v1/embeddings",
                         "body": {"model": "text-embedding-3-small", "input": "x"}})
    req = parse_input_line("openai", line, 0)
    assert group_for("openai", "b1", req) == FileGroup("b1", "/v1/embeddings",
                                                       "text-embedding-3-small")
    claude = parse_input_line("anthropic", orjson.dumps(
        {"custom_id": "1", "params": {"model": "claude-sonnet-4", "messages": []}}), 0)
    assert group_for("anthropic", "b1", claude) == FileGroup("b1", "/v1/messages", None)
    assert MAX_FILE_REQUESTS == 50_000


def test_chains_are_walked_to_their_first_stored_batch() -> None:
    links = [("r1", "s"), ("r2", "r1"), ("r3", "s"), ("x", "gone"), ("l1", "l2"), ("l2", "l1")]
    known = {"s", "r1", "r2", "r3", "x", "l1", "l2"}
    roots = tree_roots(links, known)
    assert roots["r2"] == roots["r1"] == roots["r3"] == "s"
    assert roots["x"] == "x"  # its source is not stored: it is the chain's first batch
    assert roots["l1"] in ("l1", "l2")  # a loop ends where it closes
    assert tree_depths("s", links) == {"s": 0, "r1": 1, "r3": 1, "r2": 2}


def test_what_is_offered_again() -> None:
    kw = {"root": "s", "root_failed": False, "force": False, "error_code": None}
    assert offer(None, **kw) == ("s", "no_result_line", None)
    assert offer(None, **{**kw, "root_failed": True}) == ("s", "batch_failed", None)
    failed = Attempt("failed", "r1", "errored", "overloaded_error")
    assert offer(failed, **kw) == ("r1", "errored", "overloaded_error")
    assert offer(Attempt("succeeded", "r1"), **kw) is None
    assert offer(Attempt("waiting", "r1"), **kw) is None
    flying = Attempt("in_flight", "r2")
    assert offer(flying, **kw) is None
    assert offer(flying, **{**kw, "force": True}) == ("r2", "no_result_line", None)
    assert offer(failed, **{**kw, "error_code": "overloaded_error"}) is not None
    assert offer(failed, **{**kw, "error_code": "errored"}) is not None
    assert offer(failed, **{**kw, "error_code": "batch_expired"}) is None
    assert offer(None, **{**kw, "error_code": "no_result_line"}) is not None
