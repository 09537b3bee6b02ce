"""How the simulated gateway prices a finished batch, as Bifrost 2 does (the batch cost rows
simulator/logs_routes.py serves). Read in Bifrost's source (``framework/jobaccounting/
batch.go``, ``framework/modelcatalog/datasheet/cost.go``; /work/notes/bifrost-logs.md §5):

- each result line is priced on its own; failed lines (an error, a non-2xx status, an
  Anthropic result that did not succeed) are not, nor lines without usage;
- usage: Anthropic's cache reads and writes are added into ``prompt_tokens``; other bodies'
  ``usage`` gives prompt (``prompt_tokens``, ``input_tokens`` or ``inputTokens``) plus
  ``cache_read_input_tokens`` / ``cache_creation_input_tokens``, and completion
  (``completion_tokens``, ``output_tokens``, ``outputTokens``); OpenAI's
  ``prompt_tokens_details.cached_tokens`` are inside the prompt, priced at the cache rate. So
  Gemini's thinking (only in its total) is not billed as output, and Nova's
  ``cacheReadInputTokenCount`` is not counted: Bifrost's own conventions, which batchlake's
  reconcile must explain;
- rates: the catalog's batch rate, else 0.5 x standard; cache rates scaled by the same ratio;
- one breakdown per model; a model without a rate leaves the batch's cost NULL.

The catalog is the simulator's own (USD per 1M tokens); ``prices_csv`` writes it as a
batchlake prices file, so that a sync priced with it agrees with the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(frozen=True)
class Rates:
    """A catalog entry, USD per 1M tokens; None: not given."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None
    batch_input: float | None = None
    batch_output: float | None = None


# The models the simulated population's lines name (dated snapshots match their prefix).
CATALOG: dict[str, Rates] = {
    "gpt-4o-mini": Rates(0.15, 0.60, 0.075, None, 0.075, 0.30),
    "ft:gpt-4o-mini": Rates(0.30, 1.20, 0.15),
    "gpt-4.1": Rates(2.0, 8.0, 0.50, None, 1.0, 4.0),
    "gpt-4o": Rates(2.5, 10.0, 1.25, None, 1.25, 5.0),
    "text-embedding-3-small": Rates(0.02, 0.0, None, None, 0.01, 0.0),
    "claude-sonnet-4": Rates(3.0, 15.0, 0.30, 3.75, 1.5, 7.5),
    "claude-3-5-haiku": Rates(0.80, 4.0, 0.08, 1.0, 0.40, 2.0),
    "claude-3-haiku": Rates(0.25, 1.25, 0.03, 0.30),
    "models/gemini-2.5-flash": Rates(0.30, 2.5, 0.075, None, 0.15, 1.25),
    "publishers/google/models/gemini-2.5-pro": Rates(1.25, 10.0, 0.31, None, 0.625, 5.0),
    "us.amazon.nova-lite-v1:0": Rates(0.06, 0.24, 0.015),
    "meta.llama3-1-8b-instruct-v1:0": Rates(0.22, 0.22),
}
# Models the gateway's catalog prices and batchlake's prices file does not carry: lines
# batchlake cannot price (unless genai-prices knows them) while the gateway can.
GATEWAY_ONLY = frozenset({"acme-private-1"})
CATALOG["acme-private-1"] = Rates(1.0, 2.0)


def rates_for(model: str, catalog: dict[str, Rates] | None = None) -> Rates | None:
    """The entry of ``model``: its own, else the longest entry that prefixes it followed by
    '-' (``gpt-4o-mini-2024-07-18`` is ``gpt-4o-mini``), as batchlake reads a prices file."""
    table = CATALOG if catalog is None else catalog
    if model in table:
        return table[model]
    best = max((k for k in table if model.startswith(k + "-")), key=len, default=None)
    return table[best] if best is not None else None


def prices_csv() -> str:
    """The catalog as a batchlake prices file (``--prices``), every provider (``*``)."""
    lines = ["provider,model,input,output,cache_read,cache_write,batch_input,batch_output"]
    for model, r in CATALOG.items():
        if model in GATEWAY_ONLY:
            continue
        cells = [r.input, r.output, r.cache_read, r.cache_write, r.batch_input,
                 r.batch_output]
        lines.append(",".join(["*", model] + ["" if c is None else f"{c:g}" for c in cells]))
    return "\n".join(lines) + "\n"


@dataclass
class Usage:
    prompt: int = 0
    completion: int = 0
    total: int = 0
    cache_read: int = 0
    cache_write: int = 0

    def add(self, other: Usage) -> None:
        self.prompt += other.prompt
        self.completion += other.completion
        self.total += other.total
        self.cache_read += other.cache_read
        self.cache_write += other.cache_write


def _n(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _first(d: dict[str, Any], *keys: str) -> int:
    return next((_n(d[k]) for k in keys if _n(d.get(k))), 0)


def line_usage(provider: str, item: Any) -> tuple[str | None, Usage] | None:
    """(model, usage) of a result line Bifrost prices; None for a failed line or one
    without usage."""
    if not isinstance(item, dict) or item.get("error"):
        return None
    if provider == "anthropic":
        result = _obj(item.get("result"))
        message = _obj(result.get("message"))
        usage = message.get("usage")
        if result.get("type") != "succeeded" or not isinstance(usage, dict):
            return None
        read, write = _n(usage.get("cache_read_input_tokens")), _n(
            usage.get("cache_creation_input_tokens"))
        prompt = _n(usage.get("input_tokens")) + read + write
        done = _n(usage.get("output_tokens"))
        return message.get("model"), Usage(prompt, done, prompt + done, read, write)
    response = item.get("response")
    if not isinstance(response, dict) or not isinstance(response.get("status_code"), int) \
            or not 200 <= response["status_code"] < 300:
        return None
    body = _obj(response.get("body"))
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return None
    details = _obj(usage.get("prompt_tokens_details") or usage.get("input_tokens_details"))
    inclusive = _n(details.get("cached_tokens"))
    read = _n(usage.get("cache_read_input_tokens")) or _n(usage.get("cacheReadInputTokens"))
    write = _n(usage.get("cache_creation_input_tokens")) + _n(usage.get("cacheWriteInputTokens"))
    prompt = _first(usage, "prompt_tokens", "input_tokens", "inputTokens") + read + write
    done = _first(usage, "completion_tokens", "output_tokens", "outputTokens")
    total = max(_n(usage.get("total_tokens")) or _n(usage.get("totalTokens")), prompt + done)
    model = body.get("model") if isinstance(body.get("model"), str) else None
    return model, Usage(prompt, done, total, read + inclusive, write)


def line_cost(u: Usage, r: Rates) -> float:
    """One line at batch rates (cost.go's computeBatchTextCost, without tiers)."""
    batch_in = r.batch_input if r.batch_input is not None else 0.5 * r.input
    batch_out = r.batch_output if r.batch_output is not None else 0.5 * r.output
    ratio = batch_in / r.input if r.input else 0.5
    read = (r.cache_read if r.cache_read is not None else r.input) * ratio
    write = (r.cache_write if r.cache_write is not None else r.input) * ratio
    plain = u.prompt - u.cache_read - u.cache_write
    return (plain * batch_in + u.cache_read * read + u.cache_write * write
            + u.completion * batch_out) / 1e6


@dataclass
class ModelPart:
    requests: int = 0
    usage: Usage = field(default_factory=Usage)
    cost: float | None = 0.0


@dataclass
class BatchAccount:
    """A settled batch as Bifrost's accounting sums it."""

    models: dict[str, ModelPart]
    usage: Usage
    cost: float | None  # None: a model had no rate (the row's cost is left NULL)
    parse_errors: int

    @property
    def incomplete(self) -> bool:
        return self.cost is None or self.parse_errors > 0


def account(provider: str, body: bytes, batch_model: str | None,
            catalog: dict[str, Rates] | None = None, *, cache_in_prompt: bool = True
            ) -> BatchAccount:
    """Price a results body line by line. ``cache_in_prompt=False``: an older build that
    neither counts nor prices Anthropic-style cache tokens."""
    doc = orjson.loads(body)
    items = doc.get("results") if isinstance(doc, dict) else None
    extra = doc.get("extra_fields") if isinstance(doc, dict) else None
    errors = extra.get("parse_errors") if isinstance(extra, dict) else None
    models: dict[str, ModelPart] = {}
    total = Usage()
    priced_all = True
    for item in items if isinstance(items, list) else []:
        found = line_usage(provider, item)
        if found is None:
            continue
        model, u = found
        if not cache_in_prompt:
            u = Usage(u.prompt - u.cache_write - (u.cache_read if provider in (
                "anthropic", "bedrock") else 0), u.completion, u.total, 0, 0)
        name = model or batch_model or ""
        part = models.setdefault(name, ModelPart())
        part.requests += 1
        part.usage.add(u)
        total.add(u)
        rates = rates_for(name, catalog)
        if rates is None:
            part.cost, priced_all = None, False
        elif part.cost is not None:
            part.cost += line_cost(u, rates)
    costs = [p.cost for p in models.values() if p.cost is not None]
    return BatchAccount(models, total, sum(costs) if priced_all else None,
                        len(errors) if isinstance(errors, list) else 0)
