"""The gateway's bill beside batchlake's (pure, no I/O): Bifrost's batch cost rows parsed, the
row of a batch picked from a list (echo rows never), and each batch's two costs compared and
classified: ``match``, ``differs`` (with the reason the data tells), ``gateway_unpriced``,
``gateway_missing``, ``batchlake_unpriced``. The rules, with examples, are in docs/costs.md.

Bifrost writes one cost row per settled batch in its logs store (v2.0.0 on; facts read in
``framework/jobaccounting/engine.go`` and ``framework/batchaccounting/accounting.go``): its id
is UUIDv5(namespace 90a2f576-…, "{provider}:{batch_id}"); dev snapshots before v2.0.0 used
"batch-cost:{provider}:{batch_id}" and kept the detail in ``metadata``. A ``/results`` call
that did not settle the batch writes an echo row (its own request id, ``echo: true``, the
top-level cost NULL): never the bill.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# Bifrost's namespace of batch cost row ids ("must never change", engine.go).
BATCH_COST_NAMESPACE = uuid.UUID("90a2f576-5276-481f-a753-2c78ccf97607")
RECONCILE_STATUSES = ("match", "differs", "gateway_unpriced", "gateway_missing",
                      "batchlake_unpriced")


def cost_log_id(provider: str, batch_id: str) -> str:
    """The id of a batch's cost row (Go's uuid.NewSHA1 is Python's uuid5)."""
    return str(uuid.uuid5(BATCH_COST_NAMESPACE, f"{provider}:{batch_id}"))


def legacy_cost_log_id(provider: str, batch_id: str) -> str:
    """The id dev snapshots before Bifrost v2.0.0 gave the row."""
    return f"batch-cost:{provider}:{batch_id}"


@dataclass(frozen=True)
class ModelShare:
    """One model's part of a batch: its requests (lines with usage), tokens and cost."""

    model: str
    requests: int
    prompt_tokens: int | None
    completion_tokens: int | None
    cost: float | None


@dataclass(frozen=True)
class GatewayCost:
    """A Bifrost ``batch_results`` log row, as far as reconciling reads it."""

    log_id: str
    provider: str
    batch_id: str
    model: str | None  # one model, or "mixed"
    cost: float | None  # None: Bifrost left it NULL (unknown, not zero)
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    requests_total: int | None
    requests_completed: int | None
    requests_failed: int | None
    incomplete: bool
    parse_errors: int
    logged_at: datetime | None
    models: tuple[ModelShare, ...]
    echo: bool
    raw_breakdowns: Any  # the model breakdowns as sent, kept in the table as JSON


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _time(value: Any) -> datetime | None:
    """RFC 3339 as Go writes it (nanoseconds, 'Z' or an offset)."""
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    if "." in text:  # Python takes at most microseconds
        head, _, rest = text.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        text = f"{head}.{digits[:6]}{rest[len(digits):]}"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _shares(breakdowns: Any) -> tuple[ModelShare, ...]:
    """``model_breakdowns`` ({model: {model, request_count, usage{…}, cost?}}; dev snapshots:
    a list, usage fields possibly flat)."""
    items = breakdowns.values() if isinstance(breakdowns, dict) else (
        breakdowns if isinstance(breakdowns, list) else [])
    keys = list(breakdowns) if isinstance(breakdowns, dict) else [None] * len(items)
    out = []
    for key, item in zip(keys, items, strict=True):
        if not isinstance(item, dict):
            continue
        usage = _dict(item.get("usage")) or item
        name = item.get("model") if isinstance(item.get("model"), str) else key
        if not isinstance(name, str):
            continue
        out.append(ModelShare(name, _int(item.get("request_count")) or 0,
                              _int(usage.get("prompt_tokens")) or 0,
                              _int(usage.get("completion_tokens")) or 0,
                              _float(item.get("cost"))))
    return tuple(sorted(out, key=lambda s: s.model))


def parse_cost_row(row: Any) -> GatewayCost | None:
    """A ``batch_results`` row of Bifrost's logs API; None for anything else (another
    object, no batch id). Echo rows parse, with ``echo`` set."""
    if not isinstance(row, dict) or row.get("object") != "batch_results":
        return None
    debug = _dict(row.get("batch_debug"))
    meta = _dict(row.get("metadata"))
    accounting = _dict(debug.get("accounting"))
    batch_id = debug.get("batch_id") or meta.get("batch_id")
    log_id = row.get("id")
    if not isinstance(batch_id, str) or not batch_id or not isinstance(log_id, str):
        return None
    usage = _dict(row.get("token_usage"))
    counts = _dict(debug.get("request_counts")) or _dict(meta.get("request_counts"))
    breakdowns = accounting.get("model_breakdowns", meta.get("model_breakdown"))
    provider = row.get("provider") if isinstance(row.get("provider"), str) else ""
    # Go omits zero counts (omitempty): with a token_usage object, absent means 0
    tokens = (lambda k: _int(usage.get(k)) or 0) if usage else (lambda k: None)
    return GatewayCost(
        log_id=log_id, provider=str(provider or meta.get("provider") or ""),
        batch_id=batch_id,
        model=row.get("model") if isinstance(row.get("model"), str) else None,
        cost=_float(row.get("cost")),
        prompt_tokens=tokens("prompt_tokens"), completion_tokens=tokens("completion_tokens"),
        total_tokens=tokens("total_tokens"),
        requests_total=_int(counts.get("total")),
        requests_completed=_int(counts.get("completed")),
        requests_failed=_int(counts.get("failed")),
        incomplete=accounting.get("incomplete") is True,
        parse_errors=_int(accounting.get("parse_error_count")) or 0,
        logged_at=_time(row.get("timestamp")), models=_shares(breakdowns),
        echo=accounting.get("echo") is True, raw_breakdowns=breakdowns)


def pick_cost_row(rows: Iterable[Any], provider: str, batch_id: str
                  ) -> tuple[GatewayCost | None, int]:
    """The cost row of one batch among listed rows, and how many of its other rows (echo
    rows) were passed over. Echo rows never count. Of several unflagged rows, the
    batch's own id wins (UUIDv5, then the dev snapshots' prefix), then the earliest: the
    settlement comes before any later ``/results`` fetch's row (builds before Bifrost
    #6522 wrote those unflagged)."""
    own = (cost_log_id(provider, batch_id), legacy_cost_log_id(provider, batch_id))
    found: list[GatewayCost] = []
    others = 0
    for row in rows:
        parsed = parse_cost_row(row)
        if parsed is None or parsed.batch_id != batch_id or (
                parsed.provider and parsed.provider != provider):
            continue
        if parsed.echo:
            others += 1
        else:
            found.append(parsed)
    if not found:
        return None, others
    found.sort(key=lambda r: (own.index(r.log_id) if r.log_id in own else len(own),
                              r.logged_at.timestamp() if r.logged_at else math.inf))
    return found[0], others + len(found) - 1


@dataclass(frozen=True)
class Tolerance:
    """Two costs match when they differ by at most max(``pct`` % of the larger, ``usd``)."""

    pct: float = 0.01
    usd: float = 0.0001

    def allows(self, a: float, b: float) -> bool:
        return abs(a - b) <= max(self.pct / 100 * max(abs(a), abs(b)), self.usd)


@dataclass(frozen=True)
class BatchlakeModel:
    """batchlake's lines of one model in a batch, and how they were priced."""

    model: str
    requests: int  # lines with usage
    input_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    output_tokens: int
    cost: float | None
    unpriced: int  # lines with usage but no cost
    price_basis: str | None  # 'batch', 'half-standard', … (several: joined by ', ')
    price_source: str | None
    price_model: str | None


@dataclass(frozen=True)
class BatchlakeSide:
    """batchlake's account of one finished batch (its stored result lines)."""

    provider: str
    batch_id: str
    lines: int
    usage_lines: int  # lines with usage
    unpriced_lines: int  # lines with usage but no cost
    cost: float | None  # sum over priced lines; None when none is priced
    input_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    output_tokens: int
    models: tuple[BatchlakeModel, ...]

    @property
    def billable(self) -> float | None:
        """The cost to compare: 0 when no line has usage (nothing to bill)."""
        return 0.0 if self.cost is None and self.usage_lines == 0 else self.cost


@dataclass(frozen=True)
class Comparison:
    """One batch's two costs, side by side (``difference`` = gateway − batchlake)."""

    provider: str
    batch_id: str
    batchlake_cost: float | None
    gateway_cost: float | None
    difference: float | None
    status: str
    reason: str | None


def _lines(n: int) -> str:
    return f"{n:,} line" + ("" if n == 1 else "s")


def _usd(value: float | None) -> str:
    return "NULL" if value is None else f"${value:,.6f}".rstrip("0").rstrip(".")


def _token_reasons(side: BatchlakeSide, row: GatewayCost) -> list[str]:
    """Why the token totals disagree, where the cache/thinking conventions explain it."""
    out = []
    prompt, mine = row.prompt_tokens, side.input_tokens
    cache = side.cached_tokens + side.cache_write_tokens
    if prompt is not None and prompt != mine:
        if cache and prompt == mine - cache:
            out.append(f"tokens: the gateway's prompt tokens ({prompt:,}) leave out the "
                       f"{cache:,} cache tokens batchlake counts in its input ({mine:,}; "
                       f"read {side.cached_tokens:,}, written {side.cache_write_tokens:,})")
        elif side.cached_tokens and prompt == mine - side.cached_tokens:
            out.append(f"tokens: the gateway's prompt tokens ({prompt:,}) leave out the "
                       f"{side.cached_tokens:,} cache-read tokens batchlake counts in its "
                       f"input ({mine:,})")
        elif side.cached_tokens and prompt == mine + side.cached_tokens:
            out.append(f"tokens: the gateway counts the {side.cached_tokens:,} cached tokens "
                       f"twice (prompt {prompt:,} against batchlake's input {mine:,}, which "
                       "holds them once)")
        else:
            out.append(f"tokens: prompt {prompt:,} at the gateway, input {mine:,} in "
                       "batchlake")
    done = row.completion_tokens
    if done is not None and done != side.output_tokens:
        hidden = (row.total_tokens or 0) - (prompt or 0) - done
        if done < side.output_tokens and hidden == side.output_tokens - done:
            out.append(f"tokens: the gateway bills {side.output_tokens - done:,} fewer "
                       f"output tokens ({done:,} against {side.output_tokens:,}): thinking "
                       "tokens counted only in its total (Gemini's usage)")
        else:
            out.append(f"tokens: completion {done:,} at the gateway, output "
                       f"{side.output_tokens:,} in batchlake")
    return out


def _model_reasons(side: BatchlakeSide, row: GatewayCost, tol: Tolerance, times: int
                   ) -> list[str]:
    """Per-model differences: models on one side only, request counts, and rates (same
    tokens, another cost that is not ``times`` batchlake's), naming how batchlake priced
    the model."""
    mine = {m.model: m for m in side.models if m.requests}
    theirs = {s.model: s for s in row.models}
    out = []
    only_gw, only_bl = sorted(set(theirs) - set(mine)), sorted(set(mine) - set(theirs))
    if only_gw or only_bl:
        out.append("models: " + "; ".join(
            ([f"only the gateway has {', '.join(only_gw)}"] if only_gw else [])
            + ([f"only batchlake has {', '.join(only_bl)}"] if only_bl else [])))
    for name in sorted(set(mine) & set(theirs)):
        m, s = mine[name], theirs[name]
        if s.requests != m.requests:
            out.append(f"requests: {name}: {s.requests:,} at the gateway, {m.requests:,} "
                       "in batchlake")
            continue
        same_tokens = s.prompt_tokens in (None, 0, m.input_tokens) and \
            s.completion_tokens in (None, 0, m.output_tokens)
        if s.cost is None or m.cost is None or not same_tokens or \
                tol.allows(s.cost, m.cost) or tol.allows(s.cost, times * m.cost):
            continue
        how = m.price_basis or "unknown basis"
        if m.price_source:
            how += f" from {m.price_source}"
        if m.price_model and m.price_model != name:
            how += f" as {m.price_model}"
        out.append(f"rates: {name}: {_usd(s.cost)} at the gateway, {_usd(m.cost)} in "
                   f"batchlake ({how}) for the same tokens")
    return out


def _multiple(gateway: float, mine: float, tol: Tolerance) -> int | None:
    """k when the gateway's cost is k (>= 2) times batchlake's."""
    if mine <= 0:
        return None
    k = round(gateway / mine)
    return k if k >= 2 and tol.allows(gateway, k * mine) else None


def compare(side: BatchlakeSide, row: GatewayCost | None, tol: Tolerance) -> Comparison:
    """The status of one batch, and for ``differs`` the reason the data tells (docs/costs.md
    lists the rules, with examples)."""
    mine = side.billable

    def result(status: str, reason: str | None) -> Comparison:
        gw = row.cost if row is not None else None
        diff = gw - mine if gw is not None and mine is not None else None
        return Comparison(side.provider, side.batch_id, mine, gw, diff, status, reason)

    if row is None:
        return result("gateway_missing", "the gateway has no cost row for this batch")
    if row.cost is None:
        unpriced = [s.model for s in row.models if s.cost is None]
        why = ("the gateway left the cost NULL"
               + (f" (no price for {', '.join(unpriced)})" if unpriced else "")
               + (f"; {_lines(row.parse_errors)} it could not parse" if row.parse_errors
                  else ""))
        return result("gateway_unpriced", why)
    if side.unpriced_lines or mine is None:
        names = [m.model for m in side.models if m.unpriced]
        return result("batchlake_unpriced",
                      f"{_lines(side.unpriced_lines)} batchlake has no price for"
                      + (f" ({', '.join(names)}; see v_unpriced_models)" if names else ""))
    if tol.allows(row.cost, mine):
        return result("match", None)
    reasons = []
    k = _multiple(row.cost, mine, tol)
    if k is not None:
        reasons.append(f"billed {k} times: the gateway's cost is {k}x batchlake's (a cost "
                       "per /results fetch, Bifrost #6522)")
    reasons += _token_reasons(side, row) + _model_reasons(side, row, tol, k or 1)
    if row.incomplete:
        reasons.append(f"the gateway marks its row incomplete ({_lines(row.parse_errors)} "
                       "it could not parse)")
    if not reasons:
        reasons.append("unexplained: the same requests and tokens; a per-request fee, a "
                       "long-context tier or a provider-reported cost can do this")
    return result("differs", "; ".join(reasons))
