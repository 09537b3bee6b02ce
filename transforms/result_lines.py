"""A batch's results lines -> typed rows (no I/O): outcome, error, model and normalised tokens.

The rules (docs/costs.md has them with examples):
- outcome: ``result.type`` when a ``result`` is present (any other type -> errored); else an
  ``error`` coded batch_expired -> expired, batch_cancelled/batch_canceled -> canceled, any
  other error -> errored; else a 2xx ``response.status_code`` -> succeeded, else errored.
- error_code / error_message: from ``error``, else ``result.error`` (Anthropic nests it:
  ``{"type": "error", "error": {"type", "message"}}``), else ``response.body.error``
  (``code``, else ``type``); the first non-empty value of each wins.
- tokens: ``input_tokens`` counts every prompt token, cache reads and writes included;
  ``cached_input_tokens`` the cache reads, ``cache_write_tokens`` the writes;
  ``output_tokens`` includes reasoning. A usage object that omits a counter means 0; a line
  without usage has NULL tokens. A total above prompt + completion is reasoning the counts
  left out (Gemini's thinking): the surplus is added to output and reasoning.
- model: the body's ``model`` (Anthropic: ``result.message.model``), else the batch's.

Lines that are not objects, or whose fields have the wrong types, become rejects with the
reason; the rest of the body loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
import polars as pl

from batchlake.transforms.columns import constant_column
from batchlake.transforms.redact import redact
from batchlake.transforms.schema import RESULT_LINE_COLUMNS

OUTCOMES = ("succeeded", "errored", "expired", "canceled")
_EXPIRED = frozenset({"batch_expired"})
_CANCELED = frozenset({"batch_cancelled", "batch_canceled"})
_I64 = 2**63 - 1
_LINE_SCHEMA = {c.name: c.polars_type for c in RESULT_LINE_COLUMNS}


class LineReject(Exception):
    """A results line that cannot be a row; ``str()`` is the reason."""


def _type(v: Any) -> str:
    return {str: "string", bool: "boolean", int: "integer", float: "number", dict: "object",
            list: "array"}.get(type(v), "null" if v is None else type(v).__name__)


def _obj(v: Any, path: str) -> dict[str, Any] | None:
    if v is None:
        return None
    if type(v) is not dict:
        raise LineReject(f"{path}: expected an object, got {_type(v)}")
    return v


def _str(v: Any, path: str) -> str | None:
    if v is None or type(v) is str:
        return v
    raise LineReject(f"{path}: expected a string, got {_type(v)}")


def _count(usage: dict[str, Any], key: str, path: str) -> int:
    v = usage.get(key)
    if v is None:
        return 0  # an omitted counter means 0
    if type(v) is not int or not 0 <= v <= _I64:
        raise LineReject(f"{path}.{key}: expected a non-negative integer, got {_type(v)} "
                         f"{str(v)[:30]}")
    return v


def _nested_count(usage: dict[str, Any], outer: str, key: str, path: str) -> int:
    details = _obj(usage.get(outer), f"{path}.{outer}")
    return _count(details, key, f"{path}.{outer}") if details else 0


Tokens = tuple[int, int, int, int, int]  # input, cached, cache_write, output, reasoning


def tokens_from_usage(usage: dict[str, Any], path: str) -> Tokens:
    """Normalise one provider's usage object (see the module's rules)."""
    total: int | None = None
    if "prompt_tokens" in usage or "completion_tokens" in usage:
        # OpenAI / Azure chat and embeddings, Gemini through Bifrost: cached tokens are part
        # of prompt_tokens, reasoning part of completion_tokens.
        inp = _count(usage, "prompt_tokens", path)
        out = _count(usage, "completion_tokens", path)
        cached = _nested_count(usage, "prompt_tokens_details", "cached_tokens", path)
        reasoning = _nested_count(usage, "completion_tokens_details", "reasoning_tokens", path)
        write = 0
        total = _count(usage, "total_tokens", path) if "total_tokens" in usage else None
    elif "inputTokens" in usage or "outputTokens" in usage:
        # Amazon Nova on Bedrock: cache reads and writes are not part of inputTokens.
        cached = _count(usage, "cacheReadInputTokenCount", path)
        write = _count(usage, "cacheWriteInputTokenCount", path)
        inp = _count(usage, "inputTokens", path) + cached + write
        out = _count(usage, "outputTokens", path)
        reasoning = 0
    elif "promptTokenCount" in usage or "candidatesTokenCount" in usage:
        # Gemini's native usageMetadata: thoughts are billed as output, counted apart.
        inp = _count(usage, "promptTokenCount", path)
        cached = _count(usage, "cachedContentTokenCount", path)
        reasoning = _count(usage, "thoughtsTokenCount", path)
        out = _count(usage, "candidatesTokenCount", path) + reasoning
        write = 0
        total = _count(usage, "totalTokenCount", path) if "totalTokenCount" in usage else None
        if total is not None:
            total -= _count(usage, "toolUsePromptTokenCount", path)
    elif "input_tokens_details" in usage or "output_tokens_details" in usage:
        # OpenAI Responses API: cached tokens are part of input_tokens.
        inp = _count(usage, "input_tokens", path)
        out = _count(usage, "output_tokens", path)
        cached = _nested_count(usage, "input_tokens_details", "cached_tokens", path)
        reasoning = _nested_count(usage, "output_tokens_details", "reasoning_tokens", path)
        write = 0
        total = _count(usage, "total_tokens", path) if "total_tokens" in usage else None
    else:
        # Anthropic (and Claude on Bedrock): input_tokens excludes cache reads and writes.
        cached = _count(usage, "cache_read_input_tokens", path)
        write = _count(usage, "cache_creation_input_tokens", path)
        inp = _count(usage, "input_tokens", path) + cached + write
        out = _count(usage, "output_tokens", path)
        reasoning = 0
    if total is not None and total > inp + out:
        surplus = total - inp - out  # thinking counted only in the total
        out += surplus
        reasoning += surplus
    return inp, cached, write, out, reasoning


def _llama_tokens(body: dict[str, Any], path: str) -> Tokens | None:
    if "prompt_token_count" not in body and "generation_token_count" not in body:
        return None
    return (_count(body, "prompt_token_count", path), 0, 0,
            _count(body, "generation_token_count", path), 0)


def _first(*values: Any) -> Any:
    for v in values:
        if v not in (None, ""):
            return v
    return None


@dataclass
class ResultLines:
    """One part of a results body, flattened."""

    frame: pl.DataFrame
    rejects: list[dict[str, Any]] = field(default_factory=list)


def result_row(item: Any, batch_model: str | None, store_body: bool) -> dict[str, Any]:
    """One results line as a row (without provider, batch_id and line)."""
    if type(item) is not dict:
        raise LineReject(f"not a JSON object but {_type(item)}")
    custom_id = _str(item.get("custom_id"), "custom_id")
    response = _obj(item.get("response"), "response")
    result = _obj(item.get("result"), "result")
    error = _obj(item.get("error"), "error")
    status_code = response.get("status_code") if response else None
    if status_code is not None and type(status_code) is not int:
        raise LineReject(f"response.status_code: expected an integer, got {_type(status_code)}")
    body = _obj(response.get("body"), "response.body") if response else None
    message = _obj(result.get("message"), "result.message") if result else None
    r_error = _obj(result.get("error"), "result.error") if result else None
    inner = _obj(r_error.get("error"), "result.error.error") if r_error else None
    b_error = _obj(body.get("error"), "response.body.error") if body else None

    if result is not None:
        rtype = result.get("type")
        outcome = rtype if rtype in OUTCOMES else "errored"
    elif error is not None:
        code = error.get("code")
        outcome = ("expired" if code in _EXPIRED else "canceled" if code in _CANCELED
                   else "errored")
    elif response is not None and status_code is not None and 200 <= status_code < 300:
        outcome = "succeeded"
    else:
        outcome = "errored"

    flat_type = r_error.get("type") if r_error and r_error.get("type") != "error" else None
    error_code = _first(error and error.get("code"), inner and inner.get("type"), flat_type,
                        b_error and (b_error.get("code") or b_error.get("type")))
    error_message = _first(error and error.get("message"), inner and inner.get("message"),
                           r_error and r_error.get("message"), b_error and b_error.get("message"))
    request_id = _first(response and response.get("request_id"),
                        r_error and r_error.get("request_id"))
    source = message if message is not None else body
    model = _first(source and source.get("model"), batch_model)
    tokens: Tokens | None = None
    if source is not None:
        usage_path = "result.message.usage" if message is not None else "response.body.usage"
        usage = _obj(source.get("usage"), usage_path)
        if usage is None and body is not None:
            usage = _obj(body.get("usageMetadata"), "response.body.usageMetadata")
            usage_path = "response.body.usageMetadata"
        if usage is not None:
            tokens = tokens_from_usage(usage, usage_path)
        elif body is not None:
            tokens = _llama_tokens(body, "response.body")
    row: dict[str, Any] = {
        "custom_id": custom_id, "outcome": outcome, "status_code": status_code,
        "request_id": _str_or_json(request_id), "error_code": _str_or_json(error_code),
        "error_message": _str_or_json(error_message), "model": _str_or_json(model),
        "input_tokens": None, "cached_input_tokens": None, "cache_write_tokens": None,
        "output_tokens": None, "reasoning_tokens": None, "body": None,
    }
    if tokens is not None:
        (row["input_tokens"], row["cached_input_tokens"], row["cache_write_tokens"],
         row["output_tokens"], row["reasoning_tokens"]) = tokens
    if store_body and source is not None:
        row["body"] = orjson.dumps(redact(source)).decode()
    return row


def _str_or_json(v: Any) -> str | None:
    # Codes and ids are strings in every shape; anything else is kept readable, not dropped.
    if v is None or type(v) is str:
        return v
    return orjson.dumps(v, default=str).decode()


def flatten_results(items: list[Any], first_line: int, provider: str, batch_id: str,
                    batch_model: str | None, *, store_body: bool = False) -> ResultLines:
    """``items`` (lines ``first_line``…) -> a frame of rows plus rejects with reasons."""
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    rejects: list[dict[str, Any]] = []
    for offset, item in enumerate(items):
        line = first_line + offset
        try:
            rows.append(result_row(item, batch_model, store_body))
        except LineReject as r:
            rejects.append({"provider": provider, "batch_id": batch_id,
                            "reason": f"results line {line}: {r}",
                            "payload": _payload(item)})
            continue
        lines.append(line)
    df = pl.DataFrame(rows, schema=_LINE_SCHEMA, orient="row") if rows else \
        pl.DataFrame(schema=_LINE_SCHEMA)
    df = df.hstack([constant_column("provider", provider, df.height),
                    constant_column("batch_id", batch_id, df.height),
                    pl.Series("line", lines, dtype=pl.Int64)])
    return ResultLines(df, rejects)


def _payload(item: Any) -> str:
    try:
        return orjson.dumps(redact(item)).decode()[:100_000]
    except TypeError:
        return repr(item)[:10_000]
