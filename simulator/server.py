"""The simulated Bifrost gateway: a real HTTP/1.1 server on 127.0.0.1.

It speaks the batch API as Bifrost does (``GET /v1/batches``, ``GET /v1/batches/{id}``, the
required ``provider`` parameter, Bifrost's error body, API-key checks) over a seeded population
whose batches move through their lifecycle as the simulated clock advances. Faults can be
switched on per test (``SimGateway.faults``) or over HTTP (``POST /_sim/faults``).
"""

from __future__ import annotations

import base64
import bisect
import email.utils
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from batchlake.simulator import files_routes
from batchlake.simulator.file_store import FileStore
from batchlake.simulator.population import PROVIDERS, Plan, make_population, phase_at, render
from batchlake.simulator.result_bodies import has_results, results_body

MAX_LIMIT = 1000
# Faults applied to a whole request; the others shape list pages.
REQUEST_FAULTS = {"status", "reset", "delay", "malformed", "truncated", "unconfigured"}
DEFAULT_LIMIT = 20


@dataclass
class Fault:
    """One injected fault. It applies to requests matching ``provider``/``endpoint``
    (None = any), after letting ``skip`` of them pass, ``times`` times (-1 = forever)."""

    kind: str  # status | reset | delay | malformed | truncated | dup_ids | repeat_cursor
    #            | empty_page | unconfigured
    provider: str | None = None
    endpoint: str | None = None  # "list" | "retrieve" | "results"
    times: int = 1
    skip: int = 0
    status: int = 503
    retry_after: str | None = None  # "2" or "date:2" (an HTTP-date 2 s ahead)
    delay_s: float = 0.0

    def matches(self, provider: str | None, endpoint: str) -> bool:
        return (self.provider in (None, provider)) and (self.endpoint in (None, endpoint))


def _error_body(status: int, message: str, bifrost: bool = True) -> bytes:
    return orjson.dumps({
        "is_bifrost_error": bifrost, "status_code": status,
        "error": {"message": message}, "extra_fields": {},
    })


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


class SimGateway:
    """A population of batches behind an HTTP server. Use ``start()``/``stop()`` or ``with``."""

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
        gemini_file_content: bool = False,
    ) -> None:
        self.now = int(time.time()) if now is None else now
        # Input files, uploads and batch creation (simulator/file_store.py): Gemini's content
        # download answers Bifrost's 500 unless gemini_file_content (a newer gateway)
        self.files = FileStore(gemini_file_content=gemini_file_content)
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
            self._reindex(prov)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- the model -------------------------------------------------------------------------
    def advance(self, seconds: int) -> None:
        with self._lock:
            self.now += seconds

    def plan(self, provider: str, batch_id: str) -> Plan:
        return self.by_provider[provider][self._index[provider][batch_id]]

    def add_plan(self, plan: Plan) -> None:
        lst = self.by_provider.setdefault(plan.provider, [])
        lst.append(plan)
        self._reindex(plan.provider)

    def _reindex(self, provider: str) -> None:
        """Sort newest first and cut each provider into segments (Bedrock: one per key).

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

    def _take_fault(self, provider: str | None, endpoint: str, kinds: set[str]
                    ) -> Fault | None:
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

    def _active(self, kind: str, provider: str) -> bool:
        return any(f.kind == kind and f.provider in (None, provider) and f.times != 0
                   for f in self.faults)

    # -- HTTP ------------------------------------------------------------------------------
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
        if start > 0 and self._take_fault(provider, "list", {"dup_ids"}) is not None:
            page = plans[max(first_visible, lo - 3):lo] + page[: max(0, limit - 3)]
        more = start + limit < total_visible
        nxt: str | None = _encode_cursor(key, start + limit) if more else None
        if bedrock and not more and key == 0 and 1 in segments:
            more, nxt = True, _encode_cursor(1, 0)  # next key: an empty page says so
        cursor_needed = bedrock or provider == "gemini"
        if self._take_fault(provider, "list", {"empty_page"}) is not None:
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

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        gw = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: with Nagle on, the client's delayed ACK
            # stalls every response by ~40 ms.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None,
                      content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _authorized(self) -> bool:
                if not gw.api_key:
                    return True
                auth = self.headers.get("Authorization", "")
                if auth == f"Bearer {gw.api_key}":
                    return True
                if auth.startswith("Basic "):
                    try:
                        _, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                    except Exception:
                        return False
                    return pw == gw.api_key
                return self.headers.get("x-api-key") == gw.api_key or \
                    self.headers.get("x-bf-vk") == gw.api_key

            def do_POST(self) -> None:
                url = urlsplit(self.path)
                q = parse_qs(url.query)
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                if url.path == "/_sim/advance":
                    gw.advance(int(q.get("seconds", ["0"])[0]))
                    self._send(200, orjson.dumps({"now": gw.now}))
                elif url.path == "/_sim/faults":
                    gw.faults = [Fault(**f) for f in orjson.loads(body or b"[]")]
                    self._send(200, orjson.dumps([asdict(f) for f in gw.faults]))
                elif url.path in ("/v1/files", "/v1/batches"):
                    name = "file_upload" if url.path == "/v1/files" else "batch_create"
                    with gw._lock:
                        gw.requests[(name, q.get("provider", [""])[0])] += 1
                    if not self._authorized():
                        self._send(401, _error_body(401, "Invalid API key provided"))
                    elif name == "file_upload":
                        files_routes.file_upload(_Wire(self, gw, q, body))
                    else:
                        files_routes.batch_create(_Wire(self, gw, q, body))
                else:
                    self._send(404, _error_body(404, "not found", False))

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                q = parse_qs(url.query)
                provider = q.get("provider", [None])[0]
                if url.path == "/_sim/stats":
                    self._send(200, orjson.dumps({"now": gw.now, "requests": {
                        f"{k[0]}:{k[1]}": v for k, v in gw.requests.items()}}))
                    return
                if url.path == "/health":
                    self._send(200, b'{"status":"ok"}')
                    return
                if url.path.startswith("/v1/files/") and url.path.endswith("/content"):
                    with gw._lock:
                        gw.requests[("file_content", provider or "")] += 1
                    if not self._authorized():
                        self._send(401, _error_body(401, "Invalid API key provided"))
                    elif not provider:
                        self._send(400, _error_body(400, "provider query parameter is required",
                                                    False))
                    else:
                        files_routes.file_content(_Wire(self, gw, q, b""),
                                                  url.path[len("/v1/files/"):-len("/content")])
                    return
                if url.path == "/v1/batches":
                    endpoint = "list"
                elif url.path.startswith("/v1/batches/") and url.path.endswith("/results"):
                    endpoint = "results"
                elif url.path.startswith("/v1/batches/"):
                    endpoint = "retrieve"
                else:
                    self._send(404, _error_body(404, f"no route for {url.path}", False))
                    return
                with gw._lock:
                    gw.requests[(endpoint, provider or "")] += 1
                if not self._authorized():
                    self._send(401, _error_body(401, "Invalid API key provided"))
                    return
                if not provider:
                    self._send(400, _error_body(400, "provider query parameter is required",
                                                False))
                    return
                if provider not in gw.providers:
                    self._send(400, _error_body(
                        400, f"provider {provider} is not configured on this gateway"))
                    return
                if endpoint == "results":
                    self._results(provider, unquote(url.path[len("/v1/batches/"):-len(
                        "/results")]))
                    return
                if self._fault(provider, endpoint):
                    return
                if endpoint == "list":
                    try:
                        limit = int(q.get("limit", [str(DEFAULT_LIMIT)])[0])
                    except ValueError:
                        limit = DEFAULT_LIMIT
                    limit = DEFAULT_LIMIT if limit <= 0 else min(limit, MAX_LIMIT)
                    after = q.get("after", [None])[0]
                    if not after and gw.auto_advance_s:
                        gw.advance(gw.auto_advance_s)
                    self._send(200, gw.list_page(provider, limit, after))
                    return
                batch_id = unquote(url.path[len("/v1/batches/"):])
                if gw.results_route == "list-only":  # a gateway that only lists
                    self._send(404, _error_body(404, "Cannot GET /v1/batches/" + batch_id))
                    return
                body = gw.retrieve(provider, batch_id)
                if body is None:
                    self._send(404, _error_body(404, f"batch {batch_id} not found"))
                else:
                    self._send(200, body)

            def _results(self, provider: str, batch_id: str) -> None:
                if gw.results_route == "missing":
                    self._send(404, b"404 page not found\n", content_type="text/plain")
                    return
                if gw.results_route in ("bifrost-404", "list-only"):
                    self._send(404, _error_body(404, "Cannot GET /v1/batches/" + batch_id
                                                + "/results"))
                    return
                broken = gw._take_fault(provider, "results", {"reset", "truncated"})
                if broken is None and self._fault(provider, "results"):
                    return
                body = gw.results(provider, batch_id)
                if body is None:
                    known = batch_id in gw._index.get(provider, {})
                    status = 400 if known else 404
                    self._send(status, _error_body(status, (
                        f"batch {batch_id} has no results yet (not finished or no output)"
                        if known else f"batch {batch_id} not found")))
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                # a broken body breaks off half way: after a reset, or short of its length
                end = len(body) // 2 if broken is not None else len(body)
                view = memoryview(body)
                for start in range(0, end, 1 << 20):
                    self.wfile.write(view[start:min(end, start + (1 << 20))])
                if broken is not None:
                    self.close_connection = True
                    if broken.kind == "reset":
                        self.wfile.flush()
                        self.connection.shutdown(2)

            def _fault(self, provider: str, endpoint: str) -> bool:
                f = gw._take_fault(provider, endpoint, REQUEST_FAULTS)
                if f is None:
                    return False
                if f.kind == "delay":
                    time.sleep(f.delay_s)
                    return False
                if f.kind == "status":
                    headers = {}
                    if f.retry_after:
                        if f.retry_after.startswith("date:"):
                            when = time.time() + float(f.retry_after[5:])
                            headers["Retry-After"] = email.utils.formatdate(when, usegmt=True)
                        else:
                            headers["Retry-After"] = f.retry_after
                    self._send(f.status, _error_body(f.status, f"injected {f.status}"), headers)
                    return True
                if f.kind == "unconfigured":
                    self._send(400, _error_body(
                        400, f"provider {provider} is not configured on this gateway"))
                    return True
                if f.kind == "reset":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return True
                if f.kind == "malformed":
                    self._send(200, b'{"data": [{"id": "batch_x", "status": ')
                    return True
                if f.kind == "truncated":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "5000")
                    self.end_headers()
                    self.wfile.write(b'{"data": [')
                    self.close_connection = True
                    return True
                return False

        return Handler

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a background thread; return the base URL."""
        self._server = ThreadingHTTPServer((host, port), self.handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="sim-gateway")
        self._thread.start()
        return self.base_url

    @property
    def base_url(self) -> str:
        assert self._server is not None, "gateway not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def serve_forever(self, host: str = "127.0.0.1", port: int = 8080,
                      on_ready: Callable[[str], None] | None = None) -> None:
        """Serve in this thread; ``on_ready`` gets the base URL once bound (port 0 binds a
        free port, and the URL says which)."""
        self._server = ThreadingHTTPServer((host, port), self.handler_class())
        self._server.daemon_threads = True
        if on_ready is not None:
            on_ready(self.base_url)
        self._server.serve_forever()

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

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> SimGateway:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Wire:
    """A request as simulator/files_routes.py's routes see it."""

    def __init__(self, handler: Any, gw: SimGateway, query: dict[str, list[str]], body: bytes
                 ) -> None:
        self.handler, self.gateway, self.query, self.body = handler, gw, query, body

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def header(self, name: str) -> str | None:
        value = self.handler.headers.get(name)
        return str(value) if value is not None else None

    def send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.handler._send(status, body, content_type=content_type)

    def begin(self, status: int, length: int, content_type: str = "application/json") -> None:
        h = self.handler
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(length))
        h.end_headers()

    def write(self, data: bytes | memoryview) -> None:
        self.handler.wfile.write(data)

    def reset(self) -> None:
        self.handler.close_connection = True
        self.handler.wfile.flush()
        self.handler.connection.shutdown(2)

    def close_after(self) -> None:
        self.handler.close_connection = True

    def fault(self, provider: str, endpoint: str) -> bool:
        return bool(self.handler._fault(provider, endpoint))

    def broken(self, provider: str, endpoint: str) -> str | None:
        f = self.gateway._take_fault(provider, endpoint, {"reset", "truncated"})
        return f.kind if f is not None else None
