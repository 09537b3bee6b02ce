"""A seeded population of batches, each following a lifecycle on a simulated clock.

Every batch has a plan (how long it validates, runs and finalises, and how it ends); its JSON at
clock time ``t`` is rendered from that plan in the shape Bifrost sends for its provider.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any

from batchlake.simulator.wild import dress, wild_provider

PROVIDERS: tuple[str, ...] = ("openai", "anthropic", "gemini", "bedrock", "azure")
MODELS = {
    "openai": ["gpt-4o-mini", "gpt-4.1", "text-embedding-3-small"],
    "azure": ["gpt-4o", "gpt-4o-mini"],
    "anthropic": ["claude-sonnet-4", "claude-haiku-3.5"],
    # as gateways name them: Gemini's resource names (Vertex's publishers/… form too),
    # Bedrock's cross-region inference profiles
    "gemini": ["models/gemini-2.5-flash", "publishers/google/models/gemini-2.5-pro"],
    "bedrock": ["us.anthropic.claude-3-haiku-20240307-v1:0", "us.amazon.nova-lite-v1:0"],
}
BEDROCK_LLAMA = "meta.llama3-1-8b-instruct-v1:0"
# A Bedrock custom model: no price table knows it, so the demo keeps one unpriced model on
# purpose (its lines say why).
BEDROCK_CUSTOM = "arn:aws:bedrock:us-east-1:123456789012:custom-model/acme-summarizer-v3"
ENDPOINTS = ["/v1/chat/completions", "/v1/embeddings", "/v1/responses"]
TEAMS = ["search", "support", "growth", "research"]
ERROR_CODES = [
    ("invalid_request", "Invalid JSON on line {n}"),
    ("model_not_found", "The model does not exist or you do not have access to it"),
    ("max_tokens_exceeded", "Request exceeded max_tokens"),
    ("rate_limited", "Token rate limit reached for the batch queue"),
]


DROP: Any = object()  # an override value that removes the key


@dataclass
class Plan:
    """How one batch lives: durations in seconds from creation, and its outcome."""

    provider: str
    id: str
    created_at: int
    validate_s: int
    run_s: int
    finalize_s: int
    outcome: str  # completed | failed | expired | cancelled
    total: int
    fail_ratio: float
    model: str
    endpoint: str
    metadata: dict[str, str]
    cache: dict[str, Any] | None
    n_errors: int
    key: int = 0  # which gateway key lists it (Bedrock multi-key paging)
    overrides: dict[str, Any] = field(default_factory=dict)  # fault injection: fields to force
    wild: bool = False  # rendered as the wild sends it (simulator/wild.py)
    # A batch created through the gateway (simulator/file_store.py): its requests' custom_ids,
    # which its results name in order (None: the population's own, see result_custom_ids)
    custom_ids: tuple[str, ...] | None = None


def _batch_id(provider: str, rng: random.Random, i: int) -> str:
    h = f"{rng.getrandbits(64):016x}"
    if provider == "openai":
        return f"batch_{h}{i:06d}"
    if provider == "azure":
        return f"batch_{uuid.UUID(int=rng.getrandbits(128))}"
    if provider == "anthropic":
        return f"msgbatch_{h}{i:05d}"
    if provider == "gemini":
        return f"batches/{h}{i:05d}"
    return f"arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/{h}{i:05d}"


# Tags teams add beyond team/job (OpenAI allows 16 metadata keys): ``metadata_keys`` > 2
# adds these, derived from the batch number so the random draws (and seeds) stay as they are.
EXTRA_METADATA: tuple[tuple[str, str], ...] = (
    ("env", "prod|staging|dev"), ("owner", "ana@example.com|bo@example.com|cy@example.com"),
    ("project", "support-triage|search-reindex|eval-nightly|doc-summaries"),
    ("cost_center", "cc-1042|cc-2210|cc-3307"), ("dataset", "tickets-2026q4|docs-v12|evalset-7"),
    ("pipeline_run", "run-{i}"), ("prompt_version", "v3|v4|v5"), ("region", "us|eu|apac"),
    ("description", "Nightly re-summarisation of support tickets for the triage dashboard|"
     "Embedding refresh of the product docs after the v12 release, all locales|"
     "Offline evaluation of the ranking prompt against the weekly golden set"),
    ("source", "s3://llm-batch-inputs/{i}/requests-part-0001.jsonl"),
)


def _extra_metadata(i: int, keys: int) -> dict[str, str]:
    out = {}
    for k, (name, values) in enumerate(EXTRA_METADATA[: max(0, keys - 2)]):
        choices = values.split("|")
        out[name] = choices[(i + k) % len(choices)].format(i=i)
    return out


def make_population(
    n: int, now: int, seed: int = 7, history_s: int = 3 * 86400,
    providers: tuple[str, ...] = PROVIDERS, future_share: float = 0.0, future_s: int = 86400,
    metadata_keys: int = 2, wild: bool = False,
) -> list[Plan]:
    """``n`` batches spread over ``providers``, created in the ``history_s`` before ``now``;
    a ``future_share`` of them is created in the ``future_s`` after it (new arrivals).
    Tagged batches carry ``metadata_keys`` metadata keys (2: team and job; up to 12).
    ``wild``: providers in real traffic's shares, objects dressed as the wild sends them
    (``simulator/wild.py``); off, every seed's population is as it always was."""
    rng = random.Random(seed)
    plans: list[Plan] = []
    for i in range(n):
        p = wild_provider(i, seed, providers) if wild else providers[i % len(providers)]
        created = now - rng.randint(60, history_s)
        if rng.random() < future_share:
            created = now + rng.randint(1, future_s)
        stuck = rng.random() < 0.03
        outcome = rng.choices(["completed", "failed", "expired", "cancelled"],
                              [0.82, 0.08, 0.04, 0.06])[0]
        if p == "anthropic" and outcome == "failed":
            outcome = "completed"  # Anthropic batches end; failures are per request
        cache_roll = rng.random()
        cache: dict[str, Any] | None = None
        model = rng.choice(MODELS[p])
        if p == "bedrock" and i % 3 == 2:
            # a third family for Bedrock's result shapes, chosen without a random draw so
            # that every seed's population stays as it was
            model = BEDROCK_LLAMA
        elif p == "bedrock" and i % 17 == 4:
            model = BEDROCK_CUSTOM  # by position, no random draw: the population stays
        if cache_roll < 0.25:
            cache = {"cache_hit": True, "hit_type": "direct", "cache_id": f"c-{i}"}
        elif cache_roll < 0.45:
            cache = {"cache_hit": True, "hit_type": "semantic", "cache_id": f"c-{i}",
                     "provider_used": p, "model_used": model,
                     "similarity": round(rng.uniform(0.80, 0.99), 4), "threshold": 0.8,
                     "input_tokens": rng.randint(20, 4000)}
        elif cache_roll < 0.65:
            cache = {"cache_hit": False, "cache_id": f"c-{i}"}
        plans.append(Plan(
            provider=p,
            id=_batch_id(p, rng, i),
            created_at=created,
            validate_s=rng.randint(5, 600),
            run_s=rng.randint(200, 30 * 3600) * (4 if stuck else 1),
            finalize_s=rng.randint(5, 300),
            outcome=outcome,
            total=rng.choice([10, 50, 100, 500, 1000, 5000]),
            fail_ratio=rng.random() * 0.1,
            model=model,
            endpoint=rng.choice(ENDPOINTS),
            metadata={"team": rng.choice(TEAMS), "job": f"job-{rng.randint(1, 40)}",
                      **_extra_metadata(i, metadata_keys)}
            if rng.random() < 0.8 else {},
            cache=cache,
            n_errors=rng.choice([0, 0, 1, 2, 3]) if outcome == "failed" else 0,
            key=rng.randint(0, 1) if p == "bedrock" else 0,
            wild=wild,
        ))
    return plans


def phase_at(plan: Plan, t: int) -> tuple[str, int]:
    """(phase, phase_start) of a batch at clock ``t``; the phase decides its JSON."""
    v_end = plan.created_at + plan.validate_s
    r_end = v_end + plan.run_s
    f_end = r_end + plan.finalize_s
    if t < v_end:
        return "validating", plan.created_at
    if plan.outcome == "failed":
        return "failed", v_end
    if plan.outcome == "expired" and t >= plan.created_at + 86400:
        return "expired", plan.created_at + 86400
    if plan.outcome == "cancelled":
        c_at = v_end + plan.run_s // 3
        if t >= c_at + 60:
            return "cancelled", c_at + 60
        if t >= c_at:
            return "cancelling", c_at
    if t < r_end:
        return "in_progress", v_end
    if plan.outcome == "expired":
        return "in_progress", v_end
    if t < f_end:
        return "finalizing", r_end
    return "completed", f_end


def processed_share(plan: Plan, t: int) -> float:
    """The share of the batch's requests processed at clock ``t``."""
    phase, since = phase_at(plan, t)
    if phase in ("finalizing", "completed"):
        return 1.0
    if phase in ("in_progress", "cancelling", "cancelled", "expired"):
        # Progress grows while running and freezes when it is cancelled or expires.
        upto = t if phase == "in_progress" else since
        v_end = plan.created_at + plan.validate_s
        return min(1.0, max(0.0, (upto - v_end) / max(plan.run_s, 1)))
    return 0.0


def render(plan: Plan, t: int, *, retrieve: bool, latency_ms: int = 0) -> dict[str, Any]:
    """The batch object as Bifrost sends it for ``plan.provider`` at clock ``t``."""
    phase, since = phase_at(plan, t)
    p = plan.provider
    v_end = plan.created_at + plan.validate_s
    processed = int(plan.total * processed_share(plan, t))
    failed = int(processed * plan.fail_ratio)
    ok = processed - failed
    o: dict[str, Any] = {"id": plan.id, "object": "batch"}
    if p != "bedrock":
        o["endpoint"] = plan.endpoint
        o["completion_window"] = "24h"
    o["input_file_id"] = (f"s3://batch-inputs/{plan.id[-12:]}.jsonl" if p == "bedrock"
                          else f"file-{plan.id[-10:]}")
    o["created_at"] = plan.created_at
    if p in ("openai", "azure", "anthropic"):
        o["expires_at"] = plan.created_at + 86400
    ts: dict[str, int] = {}
    if phase != "validating" and phase != "failed":
        ts["in_progress_at"] = v_end
    if phase == "failed":
        ts["failed_at"] = since
    if phase in ("finalizing", "completed"):
        ts["finalizing_at"] = v_end + plan.run_s
    if phase == "completed":
        ts["completed_at"] = since
    if phase in ("cancelling", "cancelled"):
        ts["cancelling_at"] = v_end + plan.run_s // 3
    if phase == "cancelled":
        ts["cancelled_at"] = since
    if phase == "expired":
        ts["expired_at"] = since
    counts: dict[str, int] = {"total": plan.total, "completed": ok, "failed": failed}
    status = phase
    if p == "anthropic":
        pending = plan.total - processed
        counts = {"total": plan.total, "completed": ok, "failed": failed}
        if ok:
            counts["succeeded"] = ok
        if pending and phase not in ("in_progress", "validating", "cancelling", "finalizing"):
            key = "canceled" if phase == "cancelled" else "expired"
            counts[key] = pending
        elif pending:
            counts["pending"] = pending
        if phase in ("completed", "cancelled", "expired"):
            status, o["processing_status"] = "ended", "ended"
            if phase == "completed":
                ts.pop("finalizing_at", None)
        elif phase == "cancelling":
            status, o["processing_status"] = "cancelling", "canceling"
        else:
            status, o["processing_status"] = "in_progress", "in_progress"
        if status == "ended":
            o["results_url"] = f"https://api.anthropic.com/v1/messages/batches/{plan.id}/results"
    elif p == "gemini":
        pending = plan.total - processed
        counts = {"total": plan.total, "completed": processed,
                  "failed": processed - ok - (1 if plan.fail_ratio > 0.095 and processed else 0)}
        if ok:
            counts["succeeded"] = ok
        if pending:
            counts["pending"] = pending
        o["operation_name"] = plan.id
        o["done"] = phase in ("completed", "failed", "cancelled", "expired")
        if phase == "cancelled":
            status = "cancelled"
    elif p == "bedrock":
        counts = {"total": 0, "completed": 0, "failed": 0}
    if phase == "cancelled" and p in ("openai", "azure"):
        status = "cancelled"
    o["status"] = status
    o["request_counts"] = counts
    o.update(ts)
    if phase == "completed":
        o["output_file_id"] = f"file-out-{plan.id[-8:]}"
    if failed and p in ("openai", "azure"):
        o["error_file_id"] = f"file-err-{plan.id[-8:]}"
    if plan.n_errors and phase == "failed":
        o["errors"] = {"object": "list", "data": [
            {"code": code, "message": msg.format(n=k + 1), **({"line": k + 1} if k else {}),
             **({"param": "body.model"} if code == "model_not_found" else {})}
            for k, (code, msg) in enumerate(ERROR_CODES[: plan.n_errors])
        ]}
    if plan.metadata:
        o["metadata"] = dict(plan.metadata)
    if p == "bedrock" and not retrieve:
        o["extra_fields"] = {"request_type": "", "latency": 0, "chunk_index": 0}
    else:
        xf: dict[str, Any] = {
            "request_type": "batch_retrieve", "provider": p,
            "model_requested": plan.model, "latency": latency_ms, "chunk_index": 0,
        }
        if retrieve and plan.cache is not None:
            xf["cache_debug"] = dict(plan.cache, requested_provider=p, requested_model=plan.model)
        elif not retrieve and plan.cache is not None:
            xf["cache_debug"] = dict(plan.cache)
        o["extra_fields"] = xf
    if plan.wild:
        dress(o, p)
    for k, v in plan.overrides.items():
        if v is DROP:
            o.pop(k, None)
        else:
            o[k] = v
    return o
