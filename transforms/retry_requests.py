"""Batch input lines, pure: reading one line of a provider's input file, choosing which
requests a retry offers, and writing them back in the provider's own input format.

Input formats (one JSON object a line), and the key a result line names the request by:
- OpenAI / Azure: ``{"custom_id", "method", "url", "body"}``; key ``custom_id``.
- Anthropic (inline requests, what ``POST /v1/batches`` takes as ``requests``):
  ``{"custom_id", "params"}``; an OpenAI-style line's ``body`` is taken as its ``params``.
- Gemini file batches: ``{"key", "request"}``; key ``key`` (Bifrost names a line without one
  ``request-{i}``, its position).
- Bedrock: ``{"recordId", "modelInput"}``; key ``recordId``.

A line is written back as the bytes it came as (no re-encoding: key order, number spelling and
escapes stay); only a line that must change shape (an OpenAI-style line for Anthropic) is
encoded again, by orjson, which keeps key order and values.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import polars as pl

from batchlake.transforms.redact import redact
from batchlake.transforms.schema import BATCH_REQUESTS

# The input format each provider's batches take.
FORMATS: dict[str, str] = {"openai": "openai", "azure": "openai", "anthropic": "anthropic",
                           "gemini": "gemini", "bedrock": "bedrock"}
_KEYS: dict[str, tuple[str, str]] = {  # format -> (key field, request field)
    "openai": ("custom_id", "body"), "anthropic": ("custom_id", "params"),
    "gemini": ("key", "request"), "bedrock": ("recordId", "modelInput")}
# Providers whose batches take their requests inline (Anthropic's message batches): there is no
# input file to ask the gateway for. Every other provider's is asked for (Bifrost's
# FileContent serves OpenAI and Azure files and Bedrock's S3 objects; Gemini answers 500 and
# Vertex 400, which a newer or direct gateway may not).
INLINE_PROVIDERS = ("anthropic",)
# A retry file holds at most this many requests and bytes (OpenAI's limits per batch file,
# 50,000 requests and 200 MB; Bedrock takes 50,000 records a job): a larger group is split.
MAX_FILE_REQUESTS = 50_000
MAX_FILE_BYTES = 200_000_000
# Why a request is offered again.
REASONS = ("errored", "expired", "canceled", "no_result_line", "batch_failed")
# Metadata keys a retry batch carries: its source batch and the run that made it.
LINEAGE_KEY = "batchlake_retry_of"
RUN_KEY = "batchlake_retry_run"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class InputLineError(ValueError):
    """A line that is not a request of the provider's format; ``str`` says why."""


@dataclass(frozen=True, slots=True)
class InputRequest:
    """One request of an input file: its key, its bytes as they came, and what the analytics
    read from it."""

    custom_id: str
    raw: bytes  # the line as it came, without its line break
    line: int  # 0-based position among the file's non-blank lines
    endpoint: str | None
    model: str | None
    max_tokens: int | None
    temperature: float | None
    body_bytes: int  # bytes of the request body as the line spells it, re-encoded compactly
    body_hash: str  # sha256 of the body's canonical JSON (sorted keys): equal bodies, equal hash


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        # orjson refuses integers beyond 64 bits; the standard library reads them exactly
        return json.loads(raw)


def _dumps(value: Any, *, sort: bool = False) -> bytes:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort else 0)
    except TypeError:  # an integer orjson cannot write
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"),
                          sort_keys=sort).encode()


def _int(v: Any) -> int | None:
    return v if type(v) is int else None


def _num(v: Any) -> float | None:
    return float(v) if type(v) in (int, float) else None


def _first(d: Mapping[str, Any] | None, *keys: str) -> Any:
    if not isinstance(d, Mapping):
        return None
    for k in keys:
        if d.get(k) is not None:
            return d[k]
    return None


def _generation(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    cfg = _first(body, "generationConfig", "generation_config", "inferenceConfig",
                 "inference_config")
    return cfg if isinstance(cfg, Mapping) else None


def line_format(obj: Mapping[str, Any]) -> str | None:
    """Which provider format a parsed line is in (None: none of them)."""
    for fmt, (key, req) in _KEYS.items():
        if req in obj and (key in obj or fmt == "gemini"):
            return fmt
    return None


def parse_input_line(provider: str, raw: bytes, line: int, *, batch_model: str | None = None,
                     batch_endpoint: str | None = None, measure: bool = True) -> InputRequest:
    """One input line as a request of ``provider``'s batches; raise ``InputLineError`` for a
    line that is not one (not JSON, not an object, another format, no key). ``measure``:
    also the body's size and hash (the analytics'; a retry needs neither)."""
    try:
        obj = _loads(raw)
    except ValueError as e:
        raise InputLineError(f"input line {line + 1} is not JSON ({str(e)[:80]})") from None
    if not isinstance(obj, dict):
        raise InputLineError(f"input line {line + 1} is not a JSON object")
    want = FORMATS.get(provider, "openai")
    fmt = line_format(obj)
    if fmt != want and not (want == "anthropic" and fmt == "openai"):
        raise InputLineError(f"input line {line + 1} is not in {provider}'s batch input format "
                             f"({_shape(want)})")
    key_field, req_field = _KEYS[fmt or want]
    key = obj.get(key_field)
    if key is None and fmt == "gemini":
        key = f"request-{line}"  # what Bifrost names a keyless Gemini line's result
    if not isinstance(key, str):
        raise InputLineError(f"input line {line + 1} has no string {key_field}")
    body = obj.get(req_field)
    if not isinstance(body, dict):
        raise InputLineError(f"input line {line + 1}: {req_field} is not an object")
    gen = _generation(body)
    if fmt == "openai":
        endpoint = obj.get("url") if isinstance(obj.get("url"), str) else batch_endpoint
        model = body.get("model") if isinstance(body.get("model"), str) else batch_model
    elif fmt == "anthropic":
        endpoint = "/v1/messages"
        model = body.get("model") if isinstance(body.get("model"), str) else batch_model
    else:  # a Gemini or Bedrock file is one model's: the batch's
        endpoint = batch_endpoint
        model = batch_model
    max_tokens = _int(_first(body, "max_tokens", "max_completion_tokens", "max_output_tokens",
                             "max_gen_len", "max_new_tokens"))
    if max_tokens is None:
        max_tokens = _int(_first(gen, "maxOutputTokens", "max_output_tokens", "maxTokens",
                                 "max_tokens", "max_new_tokens"))
    temperature = _num(_first(body, "temperature"))
    if temperature is None:
        temperature = _num(_first(gen, "temperature"))
    if not measure:
        return InputRequest(key, raw, line, endpoint, model, max_tokens, temperature, 0, "")
    canonical = _dumps(body, sort=True)
    return InputRequest(key, raw, line, endpoint, model, max_tokens, temperature,
                        len(_dumps(body)), hashlib.sha256(canonical).hexdigest())


def _shape(fmt: str) -> str:
    key, req = _KEYS[fmt]
    return f'{{"{key}": …, "{req}": {{…}}}}'


def split_lines(chunks: Iterable[bytes]) -> Iterable[bytes]:
    """Lines of a JSONL byte stream: split on ``\\n`` only (U+2028 and U+2029 sit inside
    strings, never between lines), ``\\r`` and a leading BOM stripped, blank lines left out."""
    tail = b""
    first = True
    for chunk in chunks:
        data = tail + chunk
        if first and data:
            if len(data) < 3 and b"\xef\xbb\xbf".startswith(data):
                tail = data
                continue
            data = data.removeprefix(b"\xef\xbb\xbf")
            first = False
        parts = data.split(b"\n")
        tail = parts.pop()
        for p in parts:
            p = p.rstrip(b"\r")
            if p.strip():
                yield p
    tail = tail.rstrip(b"\r")
    if tail.strip():
        yield tail


def retry_line(provider: str, request: InputRequest) -> bytes:
    """The request as a line of ``provider``'s input format: the bytes it came as, or, for
    an OpenAI-style line offered to Anthropic, ``{"custom_id", "params"}`` with its body."""
    if FORMATS.get(provider) != "anthropic":
        return request.raw
    obj = _loads(request.raw)
    if "params" in obj:
        return request.raw
    return _dumps({"custom_id": obj["custom_id"], "params": obj["body"]})


@dataclass(frozen=True, slots=True)
class FileGroup:
    """The requests one retry file holds: one source batch, one endpoint, one model."""

    source_batch_id: str
    endpoint: str | None
    model: str | None


def group_for(provider: str, source_batch_id: str, request: InputRequest) -> FileGroup:
    """Which file a request goes to. OpenAI and Azure take one model a file, Gemini and
    Bedrock one model a batch (the source batch's); Anthropic mixes models in a batch."""
    if FORMATS.get(provider) == "anthropic":
        return FileGroup(source_batch_id, "/v1/messages", None)
    return FileGroup(source_batch_id, request.endpoint, request.model)


def file_name(provider: str, group: FileGroup, part: int) -> str:
    """A name a person can tell apart: provider, source batch, model, endpoint, part; the
    hash of the full source id keeps two ids that shorten alike apart."""
    short = group.source_batch_id.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    digest = f"{zlib.crc32(group.source_batch_id.encode()):08x}"[:6]
    parts = [provider, _safe(short)[-40:] + "-" + digest]
    if group.model:
        parts.append(_safe(group.model.rsplit("/", 1)[-1])[:40])
    if group.endpoint:
        parts.append(_safe(group.endpoint.strip("/").removeprefix("v1/"))[:30])
    return "retry_" + "__".join(parts) + f"__part{part}.jsonl"


def _safe(text: str) -> str:
    return _UNSAFE.sub("-", text).strip("-") or "x"


@dataclass(frozen=True)
class Attempt:
    """What one request's latest attempt in a chain of retries did (from the stored
    results): ``state`` succeeded, failed, in_flight (its retry batch has not finished, or
    was never seen) or waiting (finished, results not read yet)."""

    state: str
    source_batch_id: str  # the attempt's batch: a retry names it as its source
    reason: str | None = None  # one of REASONS, for a failed attempt
    error_code: str | None = None
    model: str | None = None


def tree_roots(links: Iterable[tuple[str, str]], known: set[str]) -> dict[str, str]:
    """The root of each batch in ``links`` (child, parent): its oldest ancestor that is a
    stored batch (``known``); a loop stops where it closes."""
    parent = dict(links)
    roots: dict[str, str] = {}
    for start in parent:
        node, seen = start, {start}
        while node in parent and parent[node] in known and parent[node] not in seen:
            node = parent[node]
            seen.add(node)
        roots[start] = node
    return roots


def tree_depths(root: str, links: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Each batch of ``root``'s tree and its depth (the root 0, its retries 1, …)."""
    children: dict[str, list[str]] = {}
    for child, parent in links:
        children.setdefault(parent, []).append(child)
    depths = {root: 0}
    todo = [root]
    while todo:
        node = todo.pop()
        for c in children.get(node, []):
            if c not in depths:
                depths[c] = depths[node] + 1
                todo.append(c)
    return depths


def offer(attempt: Attempt | None, *, root: str, root_failed: bool, force: bool,
          error_code: str | None) -> tuple[str, str, str | None] | None:
    """Whether a request of the root's input is offered again, as (source batch, reason,
    error code); None when it is not (it succeeded, waits, or runs in a retry batch —
    ``force`` offers the latter again; ``error_code`` keeps only requests of that code or
    reason)."""
    if attempt is None:  # no line anywhere in the chain, never retried
        chosen: tuple[str, str, str | None] = (
            root, "batch_failed" if root_failed else "no_result_line", None)
    elif attempt.state == "failed":
        chosen = (attempt.source_batch_id, attempt.reason or "errored", attempt.error_code)
    elif attempt.state == "in_flight" and force:
        chosen = (attempt.source_batch_id, attempt.reason or "no_result_line",
                  attempt.error_code)
    else:
        return None
    if error_code is not None and error_code not in (chosen[1], chosen[2]):
        return None
    return chosen


def request_rows(provider: str, batch_id: str, requests: list[InputRequest], *,
                 store_body: bool) -> pl.DataFrame:
    """Input requests as ``batch_requests`` rows (without run_id): what was asked, the
    body itself only when ``store_body`` (redacted: prompts are users' data)."""
    rows = [{"provider": provider, "batch_id": batch_id, "line": r.line,
             "custom_id": r.custom_id, "endpoint": r.endpoint, "model": r.model,
             "max_tokens": r.max_tokens, "temperature": r.temperature,
             "body_bytes": r.body_bytes, "body_hash": r.body_hash,
             "body": _stored_body(provider, r) if store_body else None} for r in requests]
    schema = {k: v for k, v in BATCH_REQUESTS.polars_schema().items() if k != "run_id"}
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(
        schema=schema)


def _stored_body(provider: str, request: InputRequest) -> str:
    obj = _loads(request.raw)
    fmt = line_format(obj) or FORMATS.get(provider, "openai")
    return _dumps(redact(obj.get(_KEYS[fmt][1]))).decode()
