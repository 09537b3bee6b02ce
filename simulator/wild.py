"""The gateway as it is in the wild: what Bifrost relays from real providers, not our kind default.

``SimGateway(wild=True)`` (``batchlake gateway --wild``) spreads batches over the providers as
real traffic does (35% OpenAI, 25% Anthropic, 15% Gemini, 15% Bedrock, 10% Azure) and dresses
each object as Bifrost passes it through: ``errors.data`` arrays on ~20%, ``raw_request`` on
half, ``raw_response`` (the provider's own JSON: OpenAI's explicit ``null``s, Azure omitting
them, Anthropic's ISO timestamps, Gemini's operation, Bedrock's job) on a quarter, Gemini's
``progress``, response headers, parse errors. Every choice comes from a CRC of the batch id or
its index, not from the population's random stream, so the default (kind) population of every
seed stays exactly as it was. Everything served still validates against Bifrost's schema.
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime
from typing import Any

# (provider, share in percent) in the order a crc slot is matched.
WILD_SHARES: tuple[tuple[str, int], ...] = (
    ("openai", 35), ("anthropic", 25), ("gemini", 15), ("bedrock", 15), ("azure", 10))

_ERRORS = (
    {"code": "invalid_request", "message": "Invalid JSON on line {n}: Expecting ',' delimiter",
     "line": "{n}"},
    {"code": "model_not_found", "message": "The model `gpt-4.1-preview` does not exist or you "
     "do not have access to it.", "param": "body.model", "line": "{n}"},
    {"code": "max_tokens_exceeded", "message": "max_tokens is too large: 40000. This model "
     "supports at most 16384 completion tokens, whereas you provided 40000."},
    {"code": "token_limit_exceeded", "message": "Enqueued token limit reached for gpt-4o-mini "
     "in organization org-abc. Limit: 2,000,000 enqueued tokens."},
)


def _roll(key: str, salt: str) -> int:
    """A stable number in [0, 100) for ``key``: the same object gets the same dress."""
    return zlib.crc32(f"{salt}:{key}".encode()) % 100


def wild_provider(i: int, seed: int, providers: tuple[str, ...]) -> str:
    """The provider of batch ``i`` in the wild mix (restricted to ``providers``)."""
    shares = [(p, s) for p, s in WILD_SHARES if p in providers] or [(providers[0], 1)]
    slot = zlib.crc32(f"{seed}:{i}".encode()) % sum(s for _, s in shares)
    for p, s in shares:
        if slot < s:
            return p
        slot -= s
    return shares[-1][0]  # pragma: no cover


def _iso(t: int | None) -> str | None:
    return None if not t else datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _native(o: dict[str, Any], provider: str) -> dict[str, Any]:
    """The provider's own JSON for this batch, as Bifrost keeps it in raw_response."""
    rc = o.get("request_counts") or {}
    if provider in ("openai", "azure"):
        native: dict[str, Any] = {"id": o["id"], "object": "batch", "endpoint": o.get("endpoint"),
                                  "errors": o.get("errors"),
                                  "input_file_id": o.get("input_file_id"),
                                  "completion_window": o.get("completion_window"),
                                  "status": o.get("status"),
                                  "output_file_id": o.get("output_file_id"),
                                  "error_file_id": o.get("error_file_id")}
        for k in ("created_at", "in_progress_at", "expires_at", "finalizing_at", "completed_at",
                  "failed_at", "expired_at", "cancelling_at", "cancelled_at"):
            native[k] = o.get(k)
        native["request_counts"] = {k: rc.get(k, 0) for k in ("total", "completed", "failed")}
        native["metadata"] = o.get("metadata")
        if provider == "azure":  # Azure's API omits what OpenAI's sends as null
            native = {k: v for k, v in native.items() if v is not None}
        return native
    if provider == "anthropic":
        return {"id": o["id"], "type": "message_batch",
                "processing_status": o.get("processing_status"),
                "request_counts": {"processing": rc.get("pending", 0),
                                   "succeeded": rc.get("succeeded", 0),
                                   "errored": rc.get("failed", 0),
                                   "canceled": rc.get("canceled", 0),
                                   "expired": rc.get("expired", 0)},
                "ended_at": _iso(o.get("completed_at") or o.get("cancelled_at")),
                "created_at": _iso(o.get("created_at")),
                "expires_at": _iso(o.get("expires_at")),
                "cancel_initiated_at": _iso(o.get("cancelling_at")),
                "results_url": o.get("results_url"), "archived_at": None}
    if provider == "gemini":
        return {"name": o["id"], "metadata": {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
            "model": "models/gemini-2.5-flash", "displayName": o["id"][-12:],
            "state": "BATCH_STATE_" + str(o.get("status", "")).upper(),
            "createTime": _iso(o.get("created_at")),
            "batchStats": {"requestCount": str(rc.get("total", 0)),
                           "successfulRequestCount": str(rc.get("succeeded", 0)),
                           "pendingRequestCount": str(rc.get("pending", 0))}},
                "done": o.get("done", False)}
    return {"jobArn": o["id"], "jobName": o["id"].rsplit("/", 1)[-1],
            "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
            "roleArn": "arn:aws:iam::123456789012:role/BedrockBatchRole",
            "status": {"completed": "Completed", "failed": "Failed", "expired": "Expired",
                       "cancelled": "Stopped"}.get(str(o.get("status")), "InProgress"),
            "submitTime": _iso(o.get("created_at")),
            "inputDataConfig": {"s3InputDataConfig": {"s3Uri": o.get("input_file_id")}},
            "outputDataConfig": {"s3OutputDataConfig": {
                "s3Uri": "s3://llm-batch-outputs/" + o["id"][-12:] + "/"}},
            "timeoutDurationInHours": 24}


def dress(o: dict[str, Any], provider: str) -> dict[str, Any]:
    """Add to a rendered object what the wild sends on top of our kind rendering."""
    bid = o["id"]
    index = zlib.crc32(bid.encode())
    if _roll(bid, "errors") < 20 and "errors" not in o:
        n = 1 + _roll(bid, "n-errors") % 4
        data = []
        for k in range(n):
            e = _ERRORS[(index + k) % len(_ERRORS)]
            data.append({key: (k + 1 if v == "{n}" else v.replace("{n}", str(k + 1)))
                         for key, v in e.items()})
        o["errors"] = {"object": "list", "data": data}
    if provider == "gemini":
        o["progress"] = 100 if o.get("done") else _roll(bid, "progress")
    xf = o.setdefault("extra_fields", {"request_type": "", "latency": 0, "chunk_index": 0})
    if provider == "azure":
        xf["model_deployment"] = f"prod-{xf.get('model_requested') or 'gpt-4o'}-eastus2"
    if _roll(bid, "raw_request") < 50:
        xf["raw_request"] = {"method": "GET", "provider": provider, "batch_id": bid,
                             "headers": {"anthropic-version": "2023-06-01"}
                             if provider == "anthropic" else {"accept": "application/json"},
                             "query": {"limit": 100} if index % 2 else {}}
    if _roll(bid, "raw_response") < 25:
        xf["raw_response"] = _native(o, provider)
    if _roll(bid, "headers") < 10:
        xf["provider_response_headers"] = {"x-request-id": f"req_{zlib.crc32(bid.encode()):08x}",
                                           "openai-processing-ms": str(40 + index % 900)}
    if _roll(bid, "parse") < 2:
        xf["parse_errors"] = [{"code": "unknown_field", "message": "field `usage_tier` ignored"}]
    return o
