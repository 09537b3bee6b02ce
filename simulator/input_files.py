"""Input files of the simulated batches, consistent with their results bodies.

A batch's input holds one request per results line (``result_line_count``), in the provider's
input format, under the custom_ids its results name (simulator/result_bodies.py), except
where a real file differs from its results: the request whose line the results repeat (every
13th) has no result line at all, and a hostile empty custom_id in the results matches no
request. The prompts are ugly on purpose (unicode, emoji, ``<>&``, quotes and backslashes,
U+2028/U+2029, NUL), and the lines are written as people write them: compact or spaced,
raw UTF-8 or ``\\uXXXX``-escaped, keys in any order, a CRLF here and there, no final newline.

Formats (transforms/retry_requests.py reads them): OpenAI/Azure ``{custom_id, method, url,
body}``, Gemini files ``{key, request}``, Bedrock ``{recordId, modelInput}``, and Anthropic
``{custom_id, params}`` (what a user keeps: the gateway has no input file for it).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from batchlake.simulator.population import Plan
from batchlake.simulator.result_bodies import (
    plain_custom_id,
    result_custom_ids,
    result_line_count,
)

PROMPTS = (
    "Summarise ticket #{i}: the customer wrote «ça ne marche pas» 😡 — see <div>&nbsp;</div>",
    'Translate "{i}" to 日本語 and Ελληνικά; keep \\n, \\t and \\\\ as they are',
    "Réponds en JSON: {{\"ok\": true, \"n\": {i}}}\u2028second line\u2029third 👩🏽‍💻",
    "Compare a < b && c > d in line {i}\n\twith tabs, 'quotes' and \"doubles\"",
    "Null\u0000byte, bell\u0007 and 🏳️‍🌈 flags in request {i}: </script><script>alert(1)",
)
MAX_TOKENS = (256, 1024, 4096)


def input_file_id(plan: Plan) -> str:
    """The input file id a batch object names (simulator/population.py's render)."""
    if "input_file_id" in plan.overrides:
        return str(plan.overrides["input_file_id"])
    if plan.provider == "bedrock":
        return f"s3://batch-inputs/{plan.id[-12:]}.jsonl"
    return f"file-{plan.id[-10:]}"


def input_custom_ids(plan: Plan, n: int) -> list[str]:
    """The custom_id of each request: the results' own, except the repeated ones (the request
    under it has no line) and the empty hostile id (no request is named so)."""
    ids = result_custom_ids(plan, n)
    if plan.custom_ids is not None:
        return ids
    out = []
    for i, cid in enumerate(ids):
        repeated = i % 13 == 12
        out.append(plain_custom_id(plan, i) if repeated or cid == "" else cid)
    return out


def _prompt(i: int) -> str:
    return PROMPTS[i % len(PROMPTS)].format(i=i)


def _openai_body(plan: Plan, i: int, text: str) -> tuple[str, dict[str, Any]]:
    """The request's url (the batch's endpoint: one a batch) and body."""
    if plan.endpoint == "/v1/embeddings":
        return plan.endpoint, {"model": plan.model, "input": text}
    if plan.endpoint == "/v1/responses":
        return plan.endpoint, {"model": plan.model, "input": text,
                               "max_output_tokens": MAX_TOKENS[i % 3]}
    return plan.endpoint, {
        "model": plan.model, "messages": [
            {"role": "system", "content": "You are terse. Answer in <= 3 lines & cite."},
            {"role": "user", "content": text}],
        "max_tokens": MAX_TOKENS[i % 3], "temperature": [0, 0.2, 1.0][i % 3]}


def request_object(plan: Plan, i: int, custom_id: str, pad: str = "") -> dict[str, Any]:
    """Request ``i`` of the batch as a line of its provider's input format."""
    text = _prompt(i) + pad
    p = plan.provider
    if p == "gemini":
        return {"key": custom_id, "request": {
            "contents": [{"role": "user", "parts": [{"text": text}]}],
            "generationConfig": {"maxOutputTokens": MAX_TOKENS[i % 3],
                                 "temperature": [0.0, 0.7, 1.0][i % 3]}}}
    if p == "bedrock":
        if plan.model.startswith(("meta.", "arn:")):
            model_input: dict[str, Any] = {"prompt": text, "max_gen_len": MAX_TOKENS[i % 3],
                                           "temperature": 0.5}
        elif "amazon.nova" in plan.model:
            model_input = {"messages": [{"role": "user", "content": [{"text": text}]}],
                           "inferenceConfig": {"maxTokens": MAX_TOKENS[i % 3],
                                               "temperature": 0.3}}
        else:
            model_input = {"anthropic_version": "bedrock-2023-05-31",
                           "max_tokens": MAX_TOKENS[i % 3],
                           "messages": [{"role": "user",
                                         "content": [{"type": "text", "text": text}]}]}
        return {"recordId": custom_id, "modelInput": model_input}
    if p == "anthropic":
        return {"custom_id": custom_id, "params": {
            "model": plan.model, "max_tokens": MAX_TOKENS[i % 3],
            "messages": [{"role": "user", "content": text}]}}
    url, body = _openai_body(plan, i, text)
    if i % 7 == 4:  # keys in another order: the line must stay as it is
        return {"body": body, "url": url, "method": "POST", "custom_id": custom_id}
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": body}


def _encode(obj: dict[str, Any], i: int) -> bytes:
    if i % 5 == 1:  # Python's default: spaces, every non-ASCII character escaped
        return json.dumps(obj).encode()
    if i % 5 == 3:  # escaped but compact, as some SDKs write
        return json.dumps(obj, separators=(",", ":")).encode()
    return orjson.dumps(obj)


def input_body(plan: Plan, max_lines: int | None, *, padding: int = 0) -> bytes:
    """The batch's whole input file (the provider's format; for Anthropic, what its user
    keeps, since the gateway has none); ``padding`` characters more in each prompt (the
    bench's large files)."""
    n = result_line_count(plan, max_lines)
    pad = ("lorem ipsum dolor sit amet, «ünïcödé» & <b>bold</b> 😀 " * (padding // 50 + 1))[
        :padding]
    parts: list[bytes] = []
    for i, cid in enumerate(input_custom_ids(plan, n)):
        obj = request_object(plan, i, cid, pad)
        if parts:
            parts.append(b"\r\n" if i % 11 == 4 else b"\n")
        parts.append(_encode(obj, i))
    return b"".join(parts)  # no final line break: files are written so too
