"""The simulated Bifrost gateway's model: a seeded population of batches that move through
their lifecycle as the simulated clock advances, the bodies its routes serve (list pages, one
batch, results bodies), the faults switched on, and the request counters.

It knows nothing of HTTP: simulator/server.py puts it behind a server (``SimGateway``), whose
routes (simulator/route_table.py) read it through the public methods here.
"""

from __future__ import annotations

import base64
import bisect
import random
import threading
import time
from collections import Counter
from collections.abc import Mapping, Set
from typing import Any

import orjson

from batchlake.simulator.file_store import FileStore
from batchlake.simulator.injected_faults import Fault
from batchlake.simulator.population import PROVIDERS, Plan, make_population, phase_at, render
from batchlake.simulator.result_bodies import has_results, results_body
from batchlake.simulator.route_pacing import RoutePacing


def _encode_cursor(key: int, index: int, nonce: int = 0) -> str:
    raw = orjson.dumps({"v": 1, "k": key, "i": index, "n": nonce})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, int] | None:
    try:
        pad = "=" * (-len(cursor) % 4)
        d = orjson.loads(base64.urlsafe_b64decode(cursor + pad))
        return int(d["k"]), int(d["i"])
    except Exception:
        return None


class GatewayModel:
    """What the simulated gateway serves and counts; ``SimGateway`` serves it over HTTP."""

    def __init__(
        self,
        n: int = 500,
        *,
        seed: int = 7,
        providers: tuple[str, ...] = PROVIDERS,
        api_key: str | None = None,
        now: int | None = None,
        history_s: int = 3 * 86400,
        auto_advance_s: int = 0,
        future_share: float = 0.0,
        plans: list[Plan] | None = None,
        metadata_keys: int = 2,
        wild: bool = False,
        results_max_lines: int | None = 40,
        results_encoding: str = "go",
        results_route: str = "ok",
        latency: Mapping[str, float] | None = None,
        latency_jitter: float = 0.0,
        max_inflight: Mapping[str, int] | None = None,
        retry_after_s: int = 1,
        gemini_file_content: bool = False,
    ) -> None:
        """``n`` batches (seeded by ``seed``) over ``providers``, created over ``history_s``
        seconds before ``now``. A real gateway's pace, per route name (list, retrieve,
        results; simulator/route_pacing.py): ``latency`` {route: seconds before each answer's
        headers}, jittered by ± ``latency_jitter`` (a share, 0 to 1); ``max_inflight``
        {route: requests in flight at most}, beyond which a request is answered 429 at once
        with ``Retry-After: retry_after_s``. None: loopback's pace, no cap. Input files,
        uploads and batch creation: simulator/file_store.py (Gemini's file content answers
        Bifrost's 500 unless ``gemini_file_content``, a newer or direct gateway)."""
        self.now = int(time.time()) if now is None else now
        self.api_key = api_key
        self.providers = providers
        self.auto_advance_s = auto_advance_s
        self.faults: list[Fault] = []
        self.requests: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._render_cache: dict[str, tuple[str, int, bytes]] = {}
        # Lines per results body: a batch's total, capped (None: the full total) so that a
        # demo of 2,000 batches stays small; the results bench serves 200,000 lines.
        self.results_max_lines = results_max_lines
        # How results bodies are written (simulator/result_bodies.py): Go's HTML-escaping encoder,
        # as Bifrost answers, unless a test or bench asks for another.
        self.results_encoding = results_encoding
        # A gateway without the results route, as batchlake meets older or other gateways:
        # "ok" serves results; "missing" answers as a router does for a route it lacks (404,
        # plain text, no Bifrost error body); "bifrost-404" answers every results request
        # with one Bifrost-bodied 404, whatever the batch; "list-only" answers results and
        # retrieves so (a gateway, or a bench server, that only lists).
        self.results_route = results_route
        self._results_cache: dict[tuple[str, str], bytes] = {}
        self._results_cached_bytes = 0
        # Bodies set by hand (tests): served as they are for that (provider, batch id).
        self.results_bodies: dict[tuple[str, str], bytes] = {}
        self.uncapped: dict[str, int] = {}  # batch id -> content padding (add_big_batch)
        self._nonce = 0
        self.files = FileStore(gemini_file_content=gemini_file_content)
        self.pacing = RoutePacing(latency, jitter=latency_jitter, max_inflight=max_inflight,
                                  retry_after_s=retry_after_s, seed=seed)
        all_plans = plans if plans is not None else make_population(
            n, self.now, seed=seed, history_s=history_s, providers=providers,
            future_share=future_share, metadata_keys=metadata_keys, wild=wild)
        self.by_provider: dict[str, list[Plan]] = {p: [] for p in providers}
        for pl in all_plans:
            self.by_provider.setdefault(pl.provider, []).append(pl)
        self._index: dict[str, dict[str, int]] = {}
        self._neg_created: dict[str, list[int]] = {}
        self._segments: dict[str, dict[int, tuple[list[Plan], list[int], dict[str, int]]]] = {}
        for prov in self.by_provider:
            self.reindex(prov)

    # -- the model -------------------------------------------------------------------------
    def advance(self, seconds: int) -> None:
        with self._lock:
            self.now += seconds

    def plan(self, provider: str, batch_id: str) -> Plan:
        return self.by_provider[provider][self._index[provider][batch_id]]

    def answer_as(self, provider: str, batch_id: str, other_id: str) -> None:
        """Answer by-id and results requests for ``other_id`` with ``batch_id``'s batch (a
        batch whose served id a test overrode)."""
        self._index[provider][other_id] = self._index[provider][batch_id]

    def add_plan(self, plan: Plan) -> None:
        lst = self.by_provider.setdefault(plan.provider, [])
        lst.append(plan)
        self.reindex(plan.provider)

    def reindex(self, provider: str) -> None:
        """After ``by_provider[provider]`` changed (a test removing batches): sort newest
        first and cut each provider into segments (Bedrock: one per key).

        Kept precomputed so a list request costs O(page), not O(population)."""
        lst = self.by_provider[provider]
        lst.sort(key=lambda x: (-x.created_at, x.id))
        self._index[provider] = {pl.id: i for i, pl in enumerate(lst)}
        self._neg_created[provider] = [-p.created_at for p in lst]
        segs: dict[int, list[Plan]] = {}
        for pl in lst:
            segs.setdefault(pl.key if provider == "bedrock" else 0, []).append(pl)
        self._segments[provider] = {
            k: (v, [-p.created_at for p in v], {p.id: i for i, p in enumerate(v)})
            for k, v in segs.items()}

    def visible(self, provider: str) -> list[Plan]:
        """Batches that exist at the current clock, newest first."""
        lst = self.by_provider.get(provider, [])
        return lst[bisect.bisect_left(self._neg_created.get(provider, []), -self.now):]

    def truth(self, provider: str) -> list[dict[str, Any]]:
        """What a perfect sync stores for ``provider`` now (list rendering)."""
        return [render(p, self.now, retrieve=False) for p in self.visible(provider)]

    def _list_bytes(self, plan: Plan) -> bytes:
        phase, since = phase_at(plan, self.now)
        # A running batch's counts grow with the clock; every other phase is fixed.
        stamp = self.now if phase == "in_progress" else since
        hit = self._render_cache.get(plan.id)
        if hit is not None and hit[0] == phase and hit[1] == stamp and not plan.overrides:
            return hit[2]
        body = orjson.dumps(render(plan, self.now, retrieve=False))
        self._render_cache[plan.id] = (phase, stamp, body)
        return body

    def take_fault(self, provider: str | None, endpoint: str, kinds: Set[str]
                   ) -> Fault | None:
        """The next fault of one of ``kinds`` due for this request, used up by one; None if
        none is due."""
        with self._lock:
            for f in self.faults:
                if f.kind not in kinds or f.times == 0 or not f.matches(provider, endpoint):
                    continue
                if f.skip > 0:
                    f.skip -= 1
                    continue
                if f.times > 0:
                    f.times -= 1
                return f
        return None

    def count_request(self, endpoint: str, provider: str) -> None:
        with self._lock:
            self.requests[(endpoint, provider)] += 1

    def knows_batch(self, provider: str, batch_id: str) -> bool:
        """Whether ``batch_id`` is one of ``provider``'s batches (at any clock)."""
        return batch_id in self._index.get(provider, {})

    def stats(self) -> dict[str, Any]:
        """What ``GET /_sim/stats`` answers: the clock, the requests per "route:provider"
        (every request counted, 429s too), and the pace (``RoutePacing.stats``)."""
        with self._lock:
            requests = {f"{k[0]}:{k[1]}": v for k, v in self.requests.items()}
        return {"now": self.now, "requests": requests, **self.pacing.stats()}

    @property
    def throttled(self) -> Counter[str]:
        """429s answered per route (the in-flight caps)."""
        return self.pacing.throttled

    @property
    def peak_inflight(self) -> Counter[str]:
        """The most requests in flight at once, per route."""
        return self.pacing.peak_inflight

    @property
    def inflight(self) -> Counter[str]:
        """Requests in flight now, per route."""
        return self.pacing.inflight

    def _active(self, kind: str, provider: str) -> bool:
        return any(f.kind == kind and f.provider in (None, provider) and f.times != 0
                   for f in self.faults)

    # -- what the routes serve ---------------------------------------------------------------
    def list_page(self, provider: str, limit: int, after: str | None) -> bytes:
        key = 0
        start = 0  # position within the visible part of the segment
        bedrock = provider == "bedrock"
        cur = _decode_cursor(after) if after else None
        if cur is not None:
            key, start = cur
        segments = self._segments.get(provider, {})
        plans, neg_created, index = segments.get(key, ([], [], {}))
        first_visible = bisect.bisect_left(neg_created, -self.now)
        if after and cur is None and not bedrock:  # Bedrock ignores `after`: naive paging loops
            pos = index.get(after)
            if pos is not None:
                start = pos - first_visible + 1
        lo = first_visible + start
        page = plans[lo:lo + limit]
        total_visible = len(plans) - first_visible
        if start > 0 and self.take_fault(provider, "list", {"dup_ids"}) is not None:
            page = plans[max(first_visible, lo - 3):lo] + page[: max(0, limit - 3)]
        more = start + limit < total_visible
        nxt: str | None = _encode_cursor(key, start + limit) if more else None
        if bedrock and not more and key == 0 and 1 in segments:
            more, nxt = True, _encode_cursor(1, 0)  # next key: an empty page says so
        cursor_needed = bedrock or provider == "gemini"
        if self.take_fault(provider, "list", {"empty_page"}) is not None:
            # An empty page that still says has_more, pointing at the page it skipped
            # (a fresh cursor each time, as Bifrost's multi-key walk does).
            self._nonce += 1
            page, more, cursor_needed = [], True, True
            nxt = _encode_cursor(key, start, self._nonce)
        if self._active("repeat_cursor", provider):
            more, nxt, cursor_needed = True, _encode_cursor(key, 0), True
        parts = [self._list_bytes(p) for p in page]
        head: dict[str, Any] = {"object": "list"}
        if page and not bedrock:
            head["first_id"], head["last_id"] = page[0].id, page[-1].id
        if more:
            head["has_more"] = True
        if nxt and cursor_needed:
            head["next_cursor"] = nxt
        head["extra_fields"] = {"request_type": "batch_list", "provider": provider,
                                "latency": self._rng.randint(20, 400), "chunk_index": 0}
        return b'{"data":[' + b",".join(parts) + b"]," + orjson.dumps(head)[1:]

    def retrieve(self, provider: str, batch_id: str) -> bytes | None:
        idx = self._index.get(provider, {}).get(batch_id)
        if idx is None:
            return None
        plan = self.by_provider[provider][idx]
        if plan.created_at > self.now:
            return None
        return orjson.dumps(render(plan, self.now, retrieve=True,
                                   latency_ms=self._rng.randint(50, 2500)))

    def results(self, provider: str, batch_id: str) -> bytes | None:
        """A finished batch's results body; None for an unknown or unfinished batch."""
        if (provider, batch_id) in self.results_bodies:
            return self.results_bodies[(provider, batch_id)]
        idx = self._index.get(provider, {}).get(batch_id)
        if idx is None:
            return None
        plan = self.by_provider[provider][idx]
        if plan.created_at > self.now or not has_results(plan, self.now):
            return None
        key = (plan.id, phase_at(plan, self.now)[0])
        body = self._results_cache.get(key)
        if body is None:
            if plan.id in self.uncapped:
                body = results_body(plan, self.now, None, padding=self.uncapped[plan.id],
                                    encoding=self.results_encoding)
            else:
                body = results_body(plan, self.now, self.results_max_lines,
                                    encoding=self.results_encoding)
            if self._results_cached_bytes + len(body) <= 512 << 20:  # bounded cache
                self._results_cache[key] = body
                self._results_cached_bytes += len(body)
        return body

    def add_big_batch(self, requests: int, *, padding: int = 250) -> Plan:
        """One completed OpenAI batch of ``requests`` chat requests whose results body is
        uncapped, lines padded to ~600 bytes (the results benchmark's body)."""
        plan = Plan(provider="openai", id=f"batch_big{requests}", created_at=self.now - 86400,
                    validate_s=60, run_s=3600, finalize_s=60, outcome="completed",
                    total=requests, fail_ratio=0.02, model="gpt-4o-mini",
                    endpoint="/v1/chat/completions", metadata={"team": "bench"}, cache=None,
                    n_errors=0)
        self.add_plan(plan)
        self.uncapped[plan.id] = padding
        return plan
