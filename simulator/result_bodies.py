"""Results bodies of finished simulated batches, in each provider's line shape.

What ``GET /v1/batches/{id}/results`` answers (shapes from ../shared/bifrost/batch-results.md):
OpenAI / Azure chat, embeddings and Responses bodies; Anthropic ``result`` lines (errors
nested twice); Gemini bodies with Bifrost's usage whose total counts thinking; Bedrock bodies
by model family (Claude, Llama, Nova). Each batch's lines are seeded by its id, so the same
batch always answers the same body. The ugly parts are there on purpose: expired and
cancelled lines, errored lines of every kind, repeated custom_ids, unicode and hostile
custom_ids, lines of the wrong type (Azure), lines the gateway could not parse
(``parse_errors``).
"""

from __future__ import annotations

import json
import random
import zlib
from typing import Any

import orjson

from batchlake.simulator.population import Plan, phase_at, processed_share

# The dated snapshot a provider names in its response body for the model a batch asked for.
DATED = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4o": "gpt-4o-2024-08-06",
    "claude-sonnet-4": "claude-sonnet-4-20250514",
    "claude-haiku-3.5": "claude-3-5-haiku-20241022",
}
HOSTILE_IDS = ("ünïcödé-😀-{i}", "'; DROP TABLE batch_results; --{i}", "ctl\x00\x1b[31m{i}",
               "{i}\u202egnp.exe", "")
FINISHED = ("completed", "expired", "cancelled")
# Model output full of code and HTML, as real answers are: Go's encoder escapes every <, > and
# & (so a body carries an escape every few dozen bytes), and \u0000 and U+2028 stand in some.
PAD = (" The request was processed as part of a batch; <b>this answer</b> stands in for the "
       "model's text & its code: `if (a < b && c > d) { x = \"\u2028\"; }` so that lines "
       "have the size real ones do. ") * 20
CODE_ANSWER = ("Here is the fix:\n```html\n<div class=\"row\">&nbsp;<script>if (a<b && b>c) "
               "run();</script></div>\n```\n\u2028Done.\u0000")
# How a results body is written (what SimGateway(results_encoding=…) serves):
#   go        Go's encoding/json Encoder as Bifrost's SendJSON uses it: compact, HTML
#             escaping on (<, >, & as \u003c, \u003e, \u0026), U+2028/U+2029 escaped, a final
#             newline. Bifrost's own answer: the default.
#   raw       compact raw UTF-8, no HTML escaping (a provider file relayed as it is)
#   ascii     every non-ASCII character as a \uXXXX escape (Python's ensure_ascii)
#   indented  pretty-printed, two spaces
RESULTS_ENCODINGS = ("go", "raw", "ascii", "indented")
_GO_ESCAPES = ((b"<", b"\\u003c"), (b">", b"\\u003e"), (b"&", b"\\u0026"),
               ("\u2028".encode(), b"\\u2028"), ("\u2029".encode(), b"\\u2029"))


def has_results(plan: Plan, t: int) -> bool:
    return phase_at(plan, t)[0] in FINISHED


def _usage_counts(rng: random.Random) -> tuple[int, int, int, int]:
    prompt = rng.randint(20, 3000)
    cached = rng.choice([0, 0, 0, prompt // 2, prompt - 10 if prompt > 10 else 0])
    completion = rng.randint(1, 900)
    reasoning = rng.choice([0, 0, 0, completion // 3])
    return prompt, cached, completion, reasoning


FINE_TUNED = "ft:gpt-4o-mini-2024-07-18:acme::9x7Yz1Qa"  # what a fine-tune's lines name


def _openai_line(plan: Plan, rng: random.Random, i: int, pad: str = "") -> dict[str, Any]:
    model = DATED.get(plan.model, plan.model)
    if plan.model == "gpt-4o-mini" and plan.provider == "openai" and i % 11 == 5:
        model = FINE_TUNED
    prompt, cached, completion, reasoning = _usage_counts(rng)
    if "embedding" in plan.model or plan.endpoint == "/v1/embeddings":
        body: dict[str, Any] = {"object": "list", "model": model,
                                "data": [{"object": "embedding", "index": 0,
                                          "embedding": [0.01, -0.02]}],
                                "usage": {"prompt_tokens": prompt, "total_tokens": prompt}}
    elif plan.endpoint == "/v1/responses":
        body = {"id": f"resp_{i}", "object": "response", "model": model, "status": "completed",
                "output": [{"type": "message", "content": [{"type": "output_text",
                                                            "text": "ok"}]}],
                "usage": {"input_tokens": prompt,
                          "input_tokens_details": {"cached_tokens": cached},
                          "output_tokens": completion,
                          "output_tokens_details": {"reasoning_tokens": reasoning},
                          "total_tokens": prompt + completion}}
    else:
        body = {"id": f"chatcmpl-{i}", "object": "chat.completion", "model": model,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant",
                                         "content": (CODE_ANSWER if i % 7 == 3 else
                                                     "Summary: ok") + pad}}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                          "total_tokens": prompt + completion,
                          "prompt_tokens_details": {"cached_tokens": cached},
                          "completion_tokens_details": {"reasoning_tokens": reasoning}}}
    return {"response": {"status_code": 200, "request_id": f"req_{plan.id[-6:]}_{i}",
                         "body": body}}


def _openai_error(rng: random.Random, i: int) -> dict[str, Any]:
    code, kind, msg = rng.choice([
        ("context_length_exceeded", "invalid_request_error", "This model's maximum context "
         "length is 128000 tokens."),
        ("invalid_value", "invalid_request_error", "Invalid value for 'temperature'."),
        ("rate_limit_exceeded", "requests", "Rate limit reached for requests"),
    ])
    return {"response": {"status_code": 400 if kind != "requests" else 429,
                         "request_id": f"req_err_{i}",
                         "body": {"error": {"message": msg, "type": kind, "param": None,
                                            "code": code}}}}


def _anthropic_line(plan: Plan, rng: random.Random, i: int) -> dict[str, Any]:
    prompt, cached, completion, _ = _usage_counts(rng)
    write = rng.choice([0, 0, 120])
    usage = {"input_tokens": max(0, prompt - cached), "output_tokens": completion,
             "cache_creation_input_tokens": write, "cache_read_input_tokens": cached,
             "service_tier": "batch"}
    if write:
        usage["cache_creation"] = {"ephemeral_5m_input_tokens": write,
                                   "ephemeral_1h_input_tokens": 0}
    return {"result": {"type": "succeeded", "message": {
        "id": f"msg_{i}", "type": "message", "role": "assistant",
        "model": DATED.get(plan.model, plan.model),
        "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
        "usage": usage}}}


def _anthropic_error(rng: random.Random, i: int) -> dict[str, Any]:
    kind, msg = rng.choice([("invalid_request_error", "max_tokens: Field required"),
                            ("overloaded_error", "Overloaded")])
    return {"result": {"type": "errored", "error": {
        "type": "error", "error": {"type": kind, "message": msg, "details": {}},
        "request_id": None}}}


def _gemini_line(plan: Plan, rng: random.Random, i: int) -> dict[str, Any]:
    prompt, _, completion, _ = _usage_counts(rng)
    thoughts = rng.randint(100, 900) if plan.model.endswith("pro") else 0
    return {"response": {"status_code": 200, "body": {
        "text": "ok", "finish_reason": "STOP",
        # Bifrost's usage: the total counts thinking, the completion count does not
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                  "total_tokens": prompt + completion + thoughts}}}}


def _bedrock_line(plan: Plan, rng: random.Random, i: int) -> dict[str, Any]:
    prompt, cached, completion, _ = _usage_counts(rng)
    if plan.model.startswith(("meta.", "arn:")):  # Llama, or a custom (Llama) model
        body: dict[str, Any] = {"generation": "ok", "prompt_token_count": prompt,
                                "generation_token_count": completion, "stop_reason": "stop"}
    elif "amazon.nova" in plan.model:
        body = {"output": {"message": {"role": "assistant", "content": [{"text": "ok"}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": prompt - cached, "outputTokens": completion,
                          "totalTokens": prompt - cached + completion,
                          "cacheReadInputTokenCount": cached, "cacheWriteInputTokenCount": 0}}
    else:
        body = {"id": f"msg_bdrk_{i}", "type": "message", "model": "claude-3-haiku-20240307",
                "content": [{"type": "text", "text": "ok"}],
                "usage": {"input_tokens": prompt - cached, "output_tokens": completion,
                          "cache_read_input_tokens": cached}}
    return {"response": {"status_code": 200, "body": body}}


def _error_line(provider: str, rng: random.Random, i: int) -> dict[str, Any]:
    if provider in ("openai", "azure"):
        return _openai_error(rng, i)
    if provider == "anthropic":
        return _anthropic_error(rng, i)
    code, msg = rng.choice([("400", "Request contains an invalid argument."),
                            ("ValidationException", "Malformed input request")])
    return {"response": {"status_code": 400}, "error": {"code": code, "message": msg}}


def _unfinished_line(provider: str, expired: bool) -> dict[str, Any]:
    if provider == "anthropic":
        return {"result": {"type": "expired" if expired else "canceled"}}
    code = "batch_expired" if expired else "batch_cancelled"
    return {"response": None, "error": {
        "code": code, "message": "This request could not be executed before the batch "
        + ("expired." if expired else "was cancelled.")}}


_SHAPES = {"openai": _openai_line, "azure": _openai_line, "anthropic": _anthropic_line,
           "gemini": _gemini_line, "bedrock": _bedrock_line}


def encode_body(doc: bytes, encoding: str) -> bytes:
    """A compact raw UTF-8 JSON document written as ``encoding`` (RESULTS_ENCODINGS)."""
    if encoding == "raw":
        return doc
    if encoding == "go":
        # <, >, & and U+2028/9 can stand only inside strings in JSON text: replacing them in
        # the text is what Go's encoder does inside each string
        for plain, escaped in _GO_ESCAPES:
            doc = doc.replace(plain, escaped)
        return doc + b"\n"
    if encoding == "ascii":
        return json.dumps(orjson.loads(doc), separators=(",", ":")).encode()
    if encoding == "indented":
        return orjson.dumps(orjson.loads(doc), option=orjson.OPT_INDENT_2)
    raise ValueError(f"unknown results encoding {encoding!r}; use one of "
                     + ", ".join(RESULTS_ENCODINGS))


def result_line_count(plan: Plan, max_lines: int | None) -> int:
    """Lines of a finished batch's results body (its request count, capped at
    ``max_lines``; Bedrock's counts are 0, its bodies 10 lines; a batch created through the
    gateway answers each of its requests)."""
    if plan.custom_ids is not None:
        return len(plan.custom_ids)
    n = plan.total if max_lines is None else min(plan.total, max_lines)
    if plan.provider == "bedrock" and n == 0:
        n = 10 if max_lines is None else min(10, max_lines)
    return n


def result_custom_ids(plan: Plan, n: int) -> list[str]:
    """The custom_id of each of the ``n`` result lines: ``request-{i}`` (Gemini ``key-{i}``),
    a hostile id every 29 lines, and every 13th line repeating the id before it (real files
    have repeats; the request whose line it would have been has none). A batch created
    through the gateway names its own requests, in order."""
    if plan.custom_ids is not None:
        return list(plan.custom_ids[:n])
    ids: list[str] = []
    custom_id = ""
    for i in range(n):
        if i % 13 == 12:
            pass  # a repeated custom_id: real files have them, both lines are kept
        elif i % 29 == 7:
            custom_id = HOSTILE_IDS[i % len(HOSTILE_IDS)].format(i=i)
        else:
            custom_id = plain_custom_id(plan, i)
        ids.append(custom_id)
    return ids


def plain_custom_id(plan: Plan, i: int) -> str:
    return f"request-{i}" if plan.provider != "gemini" else f"key-{i}"


def results_body(plan: Plan, t: int, max_lines: int | None, padding: int = 0,
                 encoding: str = "go") -> bytes:
    """The whole body for a finished batch (the caller checked ``has_results``); chat
    answers get ``padding`` more characters; written as ``encoding``."""
    phase, _ = phase_at(plan, t)
    n = result_line_count(plan, max_lines)
    rng = random.Random(zlib.crc32(plan.id.encode()))
    done = n if phase == "completed" else int(n * processed_share(plan, t))
    shape = _SHAPES.get(plan.provider, _openai_line)
    parts: list[bytes] = []
    for i, custom_id in enumerate(result_custom_ids(plan, n)):
        if i >= done:
            line = _unfinished_line(plan.provider, phase == "expired")
        elif rng.random() < plan.fail_ratio:
            line = _error_line(plan.provider, rng, i)
        elif padding and shape is _openai_line:
            line = _openai_line(plan, rng, i, PAD[:padding])
        else:
            line = shape(plan, rng, i)
        if plan.provider == "azure" and i % 31 == 17 and plan.custom_ids is None:
            line = {"response": {"status_code": "200", "body": None}}  # a wrong type
        parts.append(orjson.dumps({"custom_id": custom_id, **line}))
    extra: dict[str, Any] = {"request_type": "batch_results", "provider": plan.provider,
                             "latency": 40}
    if n >= 20 and plan.provider in ("openai", "azure") and plan.custom_ids is None:
        extra["parse_errors"] = [{"code": "invalid_json", "message": "unexpected end of JSON",
                                  "line": n + 1}]
    return encode_body(b'{"batch_id":' + orjson.dumps(plan.id) + b',"results":['
                       + b",".join(parts) + b'],"extra_fields":' + orjson.dumps(extra) + b"}",
                       encoding)
