"""Bifrost's logs API on the simulated gateway: ``GET /api/logs/{id}`` and ``GET /api/logs``
serve the batch cost rows Bifrost 2 writes (one per settled batch, priced by
simulator/batch_accounting.py) and the echo rows of later ``/results`` fetches.

Each finished batch has a fate, seeded by its id (``LogsBook.fates`` overrides it):
``settled`` (the honest row), ``missing`` (no row), ``unpriced`` (cost left NULL),
``double`` (billed twice, as recalculation did before Bifrost #6522), ``off-rate`` (one
model at another rate), ``cache`` (an older build that left Anthropic-style cache tokens out)
and ``legacy-id`` (the row under an id of an older build: found only by the list). Echo rows
(``accounting.echo: true``, their own ids, the top-level cost absent, the settled cost copied
into ``accounting.cost``) follow some batches.

``/api/*`` is Bifrost's management API: with ``LogsBook.admin`` set it takes only Basic auth
with the admin user and password (401 Bifrost body otherwise; an inference key is not
enough). ``LogsBook.mode`` plays gateways without the API: ``missing`` (a plain-text 404),
``missing-json`` (a JSON 404 body), ``not-allowed`` (405).

The route (``logs_api``, in simulator/route_table.py) is not one of the gateway's inference
routes: the inference key is not asked for; requests are counted as ``logs`` (under the
``providers`` parameter, "" without one) and faults with ``endpoint="logs"`` apply.
"""

from __future__ import annotations

import base64
import uuid
import weakref
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from batchlake.simulator.batch_accounting import BatchAccount, account
from batchlake.simulator.exchange import Exchange
from batchlake.simulator.fault_answers import answer_fault
from batchlake.simulator.population import Plan, phase_at

LOGS_MODES = ("ok", "missing", "missing-json", "not-allowed")
_COST_NS = uuid.UUID("90a2f576-5276-481f-a753-2c78ccf97607")  # Bifrost's, engine.go
_ECHO_NS = uuid.UUID("5b0c6e2a-0d7e-4c43-9d55-3f4f1c2b9e01")  # the simulator's own
_FINISHED = ("completed", "expired", "cancelled")
# Seeded shares of the fates (percent, cumulative) and of echo rows per batch.
_FATE_SHARES = ((70, "settled"), (78, "missing"), (84, "unpriced"), (88, "double"),
                (92, "off-rate"), (96, "cache"), (100, "legacy-id"))
FATES = tuple(name for _, name in _FATE_SHARES)  # what a batch's cost row may be made to be
_ECHOES = (0, 0, 0, 1, 1, 2)


class Gateway(Protocol):
    """What the logs routes read of the simulated gateway."""

    now: int
    by_provider: dict[str, list[Plan]]

    def plan(self, provider: str, batch_id: str) -> Plan: ...

    def results(self, provider: str, batch_id: str) -> bytes | None: ...


def _json_error(status: int, message: str) -> bytes:
    return orjson.dumps({"is_bifrost_error": False, "status_code": status,
                         "error": {"message": message}, "extra_fields": {}})


def _rfc3339(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str | None) -> int | None:
    if not text:
        return None
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None  # Bifrost ignores a time it cannot parse


def _breakdowns(acct: BatchAccount, fate: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, (name, part) in enumerate(sorted(acct.models.items())):
        cost = part.cost
        if cost is not None and fate == "double":
            cost *= 2
        if cost is not None and fate == "off-rate" and i == 0:
            cost *= 1.25
        if fate == "unpriced" and i == 0:
            cost = None
        u = part.usage
        entry: dict[str, Any] = {"model": name, "request_count": part.requests, "usage": {
            k: v for k, v in (("prompt_tokens", u.prompt), ("completion_tokens", u.completion),
                              ("total_tokens", u.total)) if v}}
        if cost is not None:
            entry["cost"] = cost
        out[name] = entry
    return out


@dataclass
class LogsBook:
    """What one simulated gateway's logs API holds and how it answers."""

    mode: str = "ok"
    admin: tuple[str, str] | None = None  # (user, password): /api/* needs them
    fates: dict[tuple[str, str], str] = field(default_factory=dict)
    echoes: dict[tuple[str, str], int] = field(default_factory=dict)
    settle_delay_s: int = 120  # the row is written this long after the batch finished
    _rows: dict[tuple[str, str, str], list[tuple[int, str, bytes]]] = field(
        default_factory=dict)
    _ids: dict[str, tuple[str, str]] = field(default_factory=dict)
    _indexed: int = -1

    def fate(self, provider: str, batch_id: str) -> str:
        if (provider, batch_id) in self.fates:
            return self.fates[(provider, batch_id)]
        share = zlib.crc32(f"{provider}:{batch_id}".encode()) % 100
        return next(name for upto, name in _FATE_SHARES if share < upto)

    def echo_count(self, provider: str, batch_id: str) -> int:
        if (provider, batch_id) in self.echoes:
            return self.echoes[(provider, batch_id)]
        return _ECHOES[zlib.crc32(f"echo:{provider}:{batch_id}".encode()) % len(_ECHOES)]

    @staticmethod
    def own_id(provider: str, batch_id: str, fate: str) -> str:
        if fate == "legacy-id":
            return f"batch-cost:{provider}:{batch_id}"
        return str(uuid.uuid5(_COST_NS, f"{provider}:{batch_id}"))

    @staticmethod
    def echo_id(provider: str, batch_id: str, k: int) -> str:
        return str(uuid.uuid5(_ECHO_NS, f"{provider}:{batch_id}:{k}"))

    # -- the rows of one batch ---------------------------------------------------------------
    def batch_rows(self, gw: Gateway, plan: Plan) -> list[tuple[int, str, bytes]]:
        """(timestamp, id, row JSON) of the batch's cost row and echo rows that exist at
        the gateway's clock, oldest first."""
        phase, since = phase_at(plan, gw.now)
        if phase not in _FINISHED:
            return []
        fate = self.fate(plan.provider, plan.id)
        echoes = self.echo_count(plan.provider, plan.id)
        key = (plan.provider, plan.id, f"{phase}:{fate}:{echoes}")
        rows = self._rows.get(key)
        if rows is None:
            rows = self._render(gw, plan, phase, since + self.settle_delay_s, fate)
            self._rows[key] = rows
        return [r for r in rows if r[0] <= gw.now]

    def _render(self, gw: Gateway, plan: Plan, phase: str, settled: int, fate: str
                ) -> list[tuple[int, str, bytes]]:
        body = gw.results(plan.provider, plan.id)
        if body is None:
            return []
        acct = account(plan.provider, body, plan.model, cache_in_prompt=fate != "cache")
        if acct.usage.total <= 0:
            return []  # nothing with usage: Bifrost parks the batch without a row
        breakdowns = _breakdowns(acct, fate)
        cost = None if acct.cost is None or fate == "unpriced" else sum(
            b["cost"] for b in breakdowns.values())
        u = acct.usage
        base: dict[str, Any] = {
            "object": "batch_results", "provider": plan.provider,
            "model": next(iter(breakdowns)) if len(breakdowns) == 1 else "mixed",
            "status": "success", "number_of_retries": 0, "fallback_index": 0,
            "token_usage": {k: v for k, v in (("prompt_tokens", u.prompt),
                                              ("completion_tokens", u.completion),
                                              ("total_tokens", u.total)) if v},
        }
        n = sum(p.requests for p in acct.models.values())
        debug: dict[str, Any] = {
            "batch_id": plan.id, "status": phase, "endpoint": plan.endpoint,
            "request_counts": {"total": plan.total, "completed": n,
                               "failed": max(0, plan.total - n)}}
        accounting: dict[str, Any] = {"model_breakdowns": breakdowns}
        if acct.parse_errors:
            accounting["parse_error_count"] = acct.parse_errors
        if acct.incomplete or fate == "unpriced":
            accounting["incomplete"] = True
        rows = []
        own = self.own_id(plan.provider, plan.id, fate)
        if fate != "missing":
            row = {"id": own, "timestamp": _rfc3339(settled), **base,
                   "batch_debug": {**debug, "accounting": accounting}}
            if cost is not None:
                row["cost"] = cost
            rows.append((settled, own, orjson.dumps(row)))
        for k in range(self.echo_count(plan.provider, plan.id)):
            at, eid = settled + (k + 1) * 3600, self.echo_id(plan.provider, plan.id, k)
            echo = {**accounting, "echo": True}
            if cost is not None:
                echo["cost"] = cost
            rows.append((at, eid, orjson.dumps({
                "id": eid, "timestamp": _rfc3339(at), **base,
                "batch_debug": {**debug, "accounting": echo}})))
        return rows

    # -- finding rows --------------------------------------------------------------------------
    def _index(self, gw: Gateway) -> dict[str, tuple[str, str]]:
        """Every id a row of a batch may carry -> the batch (whether the row exists now is
        the batch's rows' to say)."""
        echoes = max([max(_ECHOES), *self.echoes.values()])
        size = sum(len(v) for v in gw.by_provider.values()) * (echoes + 1)
        if size != self._indexed:
            ids: dict[str, tuple[str, str]] = {}
            for provider, plans in gw.by_provider.items():
                for p in plans:
                    for fate in ("settled", "legacy-id"):
                        ids[self.own_id(provider, p.id, fate)] = (provider, p.id)
                    for k in range(echoes):
                        ids[self.echo_id(provider, p.id, k)] = (provider, p.id)
            self._ids, self._indexed = ids, size
        return self._ids

    def row(self, gw: Gateway, log_id: str) -> bytes | None:
        key = self._index(gw).get(log_id)
        if key is None:
            return None
        rows = self.batch_rows(gw, gw.plan(*key))
        return next((r for _, rid, r in rows if rid == log_id), None)

    def search(self, gw: Gateway, query: dict[str, list[str]]) -> tuple[int, bytes]:
        """``GET /api/logs``: (status, body), with Bifrost's parameter checks."""
        def arg(name: str) -> str | None:
            return query[name][0] if query.get(name) else None

        try:
            limit = int(arg("limit") or 50)
        except ValueError:
            limit = 50
        try:
            offset = int(arg("offset") or 0)
        except ValueError:
            offset = 0
        if limit <= 0:
            return 400, _json_error(400, "limit must be greater than 0")
        if limit > 1000:
            return 400, _json_error(400, "limit cannot exceed 1000")
        if offset < 0:
            return 400, _json_error(400, "offset cannot be negative")
        objects = set((arg("objects") or "batch_results").split(","))
        wanted = set((arg("providers") or ",".join(gw.by_provider)).split(","))
        start, end = _parse_time(arg("start_time")), _parse_time(arg("end_time"))
        order = "asc" if arg("order") == "asc" else "desc"
        found: list[tuple[int, str, bytes]] = []
        if "batch_results" in objects:
            for provider in sorted(wanted & set(gw.by_provider)):
                for plan in gw.by_provider[provider]:
                    found += [r for r in self.batch_rows(gw, plan)
                              if (start is None or r[0] >= start) and (end is None or
                                                                       r[0] <= end)]
        found.sort(key=lambda r: (r[0], r[1]), reverse=order == "desc")
        page = found[offset:offset + limit]
        head = orjson.dumps({
            "pagination": {"limit": limit, "offset": offset, "sort_by": "timestamp",
                           "order": order, "total_count": len(found)},
            "stats": {"total_requests": len(found), "success_rate": 100.0,
                      "average_latency": 0.0, "total_tokens": 0, "total_cost": 0.0},
            "has_logs": bool(found)})
        return 200, b'{"logs":[' + b",".join(r[2] for r in page) + b"]," + head[1:]

    def admitted(self, authorization: str) -> bool:
        """Whether a request's Authorization header passes Bifrost's /api/* check."""
        if self.admin is None:
            return True
        pair = base64.b64encode(f"{self.admin[0]}:{self.admin[1]}".encode()).decode()
        return authorization in (f"Basic {pair}", f"Bearer {pair}")


_BOOKS: weakref.WeakKeyDictionary[Any, LogsBook] = weakref.WeakKeyDictionary()


def logs_book(gw: Any) -> LogsBook:
    """The logs API of a simulated gateway (made on first use)."""
    book = _BOOKS.get(gw)
    if book is None:
        book = _BOOKS[gw] = LogsBook()
    return book


def answer_logs(gw: Gateway, path: str, query: dict[str, list[str]], authorization: str
                ) -> tuple[int, bytes, str]:
    """The answer to ``GET path`` under /api/logs: (status, body, content type)."""
    book = logs_book(gw)
    if book.mode == "missing":
        return 404, b"404 page not found\n", "text/plain"
    if book.mode == "not-allowed":
        return 405, b"Method Not Allowed\n", "text/plain"
    if book.mode == "missing-json":
        return 404, _json_error(404, f"Cannot GET {path}"), "application/json"
    if not book.admitted(authorization):
        return 401, _json_error(401, "Unauthorized"), "application/json"
    if path.rstrip("/") == "/api/logs":
        status, body = book.search(gw, query)
        return status, body, "application/json"
    log_id = path[len("/api/logs/"):]
    if not log_id:
        return 400, _json_error(400, "log id is required"), "application/json"
    row = book.row(gw, log_id)
    if row is None:
        return 404, _json_error(404, "log not found"), "application/json"
    return 200, row, "application/json"


def logs_api(ex: Exchange) -> None:
    """``GET /api/logs`` and ``GET /api/logs/{id}``."""
    provider = ex.arg("providers") or ""
    ex.gateway.count_request("logs", provider)
    if answer_fault(ex, provider, "logs"):
        return
    status, body, content_type = answer_logs(ex.gateway, ex.path, ex.query,
                                             ex.handler.headers.get("Authorization", ""))
    ex.send(status, body, content_type=content_type)
