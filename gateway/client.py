"""The Bifrost gateway client: all of batchlake's HTTP lives here.

One ``httpx.Client`` (one keep-alive pool) per ``GatewayClient``. The sync client is used on
purpose: on one host it beat httpx's async client, and keep-alive matters more than concurrency
on 2 cores. By-id retrievals run on a bounded thread pool sharing the same pool.

Requests go over ``StdlibTransport`` (``gateway/transport.py``), an httpx transport on the
standard library's http.client: httpx's own (httpcore and h11, pure Python) cost ~0.2 ms more
CPU per 100 KB page, with the GIL held. JSON GETs (list pages, by-id reads) go straight to
that transport with the headers built once: the client's per-request work (URL merging, auth
and cookie flows, redirect and hook handling) cost ~300 us of a ~650 us request here, 0.3 s of
CPU in a 1,000-page sync. Where an environment proxy applies, every request takes the client
and httpx's own transport, which honour it.
"""

from __future__ import annotations

import base64
import logging
import random
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NoReturn, TypeVar
from urllib.parse import quote, urlsplit

import httpx
import orjson

from batchlake.common import (
    GatewayBadResponse,
    GatewayError,
    GatewayUnreachable,
    Settings,
    redact_url,
)
from batchlake.gateway.answers import (
    Retryable,
    raise_for_status,
    transport_error,
)
from batchlake.gateway.limiter import AdaptiveLimit, Slot
from batchlake.gateway.listing import ListingReport, Page, list_pages
from batchlake.gateway.stream import BodyError, ResultsBody, iter_results
from batchlake.gateway.transport import StdlibTransport

log = logging.getLogger("batchlake.gateway")
_T = TypeVar("_T")
RESULTS_CHUNK = 1 << 18  # bytes read from a results body at a time
# 429s a request waits out without using up a retry while the window shrinks (64 -> 1
# takes 12 halvings at x0.7): a gateway that refuses every request still ends in errors.
FREE_RETRIES = 12


def _proxy_applies(base_url: str) -> bool:
    """Whether an environment proxy (HTTP_PROXY, ALL_PROXY…, less NO_PROXY) covers the
    gateway: requests then go through httpx.Client, which routes them by it."""
    url = urlsplit(base_url)
    proxies = urllib.request.getproxies()
    if not (proxies.get(url.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(url.hostname or "")


class GatewayClient:
    """Reads batches from a Bifrost gateway.

    >>> with GatewayClient(Settings(base_url="http://localhost:8080")) as gw:
    ...     for page in gw.list_pages("openai"):
    ...         ...
    """

    def __init__(self, settings: Settings, *, transport: httpx.BaseTransport | None = None
                 ) -> None:
        """``transport``: an httpx transport to send every request through instead of the
        keep-alive pool this client makes (environment proxies are then not consulted)."""
        self.settings = settings
        auth = settings.auth
        headers = {"Accept": "application/json", "User-Agent": "batchlake/0.1"}
        if auth.api_key:
            if auth.header_name:
                headers[auth.header_name] = auth.api_key
            else:
                headers["Authorization"] = f"Bearer {auth.api_key}"
        if auth.basic_user is not None:  # as httpx.BasicAuth sends it, built once
            pair = f"{auth.basic_user}:{auth.basic_password or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        headers.update(dict(auth.extra_headers))
        timeout = httpx.Timeout(settings.timeout_s)
        # Plain http needs no TLS context; building one loads the CA store, a tenth of an
        # incremental sync. https always verifies unless --insecure.
        verify = settings.verify_tls and settings.base_url.startswith("https")
        # A connection per request in flight: the window's, and a listing per provider.
        pool = settings.max_inflight + len(settings.providers) + 4
        limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
        if transport is None and not _proxy_applies(settings.base_url):
            transport = StdlibTransport(verify=verify,
                                        max_idle=limits.max_keepalive_connections or 1)
        # Given a transport, the client sends through it; verify and limits count only where
        # it builds its own (a proxy applies, see _proxy_applies).
        self._http = httpx.Client(base_url=settings.base_url, headers=headers, timeout=timeout,
                                  verify=verify, limits=limits, transport=transport)
        # The direct path (see the module's docstring): None where a proxy applies.
        self._direct = transport
        self._headers = httpx.Headers(self._http.headers)
        self._extensions = {"timeout": timeout.as_dict()}
        self._base = str(self._http.base_url).rstrip("/")
        self._reached = False  # a connect error before any answer is a wrong URL, not a blip
        self._where = redact_url(settings.base_url)
        # The window of by-id and results requests (gateway/limiter.py); no single pause
        # longer than a retry's longest wait.
        self.limit = AdaptiveLimit(initial=settings.concurrency,
                                   maximum=max(1, settings.max_inflight),
                                   max_pause_s=settings.backoff_max_s)

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- one request with retries ----------------------------------------------------------
    def _delay(self, attempt: int, error: Retryable) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based): the server's
        Retry-After where it sent one, else exponential backoff with jitter; capped."""
        s = self.settings
        if error.retry_after is not None:
            return min(s.backoff_max_s, max(error.retry_after, 0.0))
        backoff = min(s.backoff_max_s, s.backoff_base_s * 2 ** (attempt - 1))
        return random.uniform(backoff / 2, backoff)  # jitter: spread out retry storms

    def _with_retries(self, call: Callable[[], _T]) -> _T:
        """``call()``, tried again on a ``Retryable`` failure up to max_retries times; then
        its GatewayError is raised. A 429 the window took as its own fault (``free``: other
        requests were in flight with it) is waited out and tried again without using up a
        retry, at most FREE_RETRIES times: the window shrinks instead, so the two do not
        multiply into a storm. (A loop of our own: tenacity cost ~30 ms of import and
        ~60 us a request, for what these lines do.)"""
        counted = free = 0
        while True:
            try:
                return call()
            except Retryable as e:
                window_s = e.free and free < FREE_RETRIES
                if window_s:
                    free += 1
                else:
                    counted += 1
                if counted > self.settings.max_retries:
                    raise e.error from None
                # the window's own 429s are its business, not a warning
                log.log(logging.DEBUG if window_s else logging.WARNING,
                        "retrying after %s (attempt %d)", e, counted + free)
                time.sleep(self._delay(max(1, counted), e))

    def _limited(self, route: str, send: Callable[[], _T], first: list[Slot],
                 nested: bool = False) -> tuple[_T, Slot]:
        """One attempt of a request under the window: ``send()`` in a slot (``first``'s,
        for the first attempt, else a new one; ``nested``: let in at once, see
        ``AdaptiveLimit.acquire_nested``), the window told what came back. Returns the
        answer and its slot, to be released once the body is read; released here when the
        attempt fails."""
        slot = first.pop() if first else (
            self.limit.acquire_nested() if nested else self.limit.acquire())
        assert slot is not None  # acquire() without a timeout waits for one
        sent = time.monotonic()
        try:
            answer = send()
        except Retryable as e:
            if e.status == 429:
                e.free = slot.inflight > 1  # not alone: the window's doing, not the request's
                slot.overloaded(e.retry_after)
            else:  # 5xx, a reset, a timeout, a broken body
                slot.failed()
            slot.release()
            raise
        except BaseException:  # 4xx and the like say nothing about load
            slot.release()
            raise
        slot.answered(route, time.monotonic() - sent)  # time to headers
        return answer, slot

    def get_json(self, path: str, params: dict[str, Any],
                 decode: Callable[[bytes], Any] = orjson.loads) -> Any:
        """GET ``path`` and ``decode`` its JSON body, retrying transient faults; raise a
        GatewayError. ``decode`` raises ``orjson.JSONDecodeError`` on a body that is not
        JSON."""
        return self._with_retries(lambda: self._get_once(path, params, decode))

    def _open_stream(self, path: str, params: dict[str, Any], first: list[Slot]
                     ) -> tuple[httpx.Response, Slot]:
        """Send a GET whose body is read later, as a stream, under the window; the status is
        checked (and transient faults retried) before any of the body is read."""
        return self._with_retries(lambda: self._limited(
            "results", lambda: self._open_once(path, params), first))

    def _open_once(self, path: str, params: dict[str, Any],
                   refuse: Callable[[int, bytes, str | None], NoReturn] = raise_for_status
                   ) -> httpx.Response:
        """Send a GET whose body is read later; an answer of 300 or more is read, closed and
        handed to ``refuse`` (status, body, Retry-After), which raises."""
        request = self._http.build_request("GET", path, params=params)
        try:
            resp = self._http.send(request, stream=True)
        except httpx.TransportError as e:
            raise self._transport_error(e) from None
        self._reached = True
        if resp.status_code < 300:
            return resp
        try:
            body = resp.read()
        except httpx.TransportError:
            body = b""
        finally:
            resp.close()
        refuse(resp.status_code, body, resp.headers.get("Retry-After"))

    def stream_results(self, provider: str, batch_id: str, body: ResultsBody, *,
                       slot: Slot | None = None,
                       on_bytes: Callable[[int], None] | None = None) -> Iterator[Any]:
        """``GET /v1/batches/{id}/results?provider=…``: yield each results item as the body
        streams in (memory stays flat at any size); ``body`` gets the other fields. A body
        that breaks off or is not a results object raises ``GatewayBadResponse`` (after the
        items before the break were yielded); the caller decides what they are worth.

        The request holds a slot of the window until its body is read: ``slot``, one the
        caller acquired (released here, whatever happens), else one this waits for.
        ``on_bytes(n)``: after each read of ``n`` body bytes."""
        path = f"/v1/batches/{quote(batch_id, safe='')}/results"
        first = [slot] if slot is not None else []
        try:
            resp, held = self._open_stream(path, {"provider": provider}, first)
        finally:
            for unused in first:  # never sent: an error before the first attempt
                unused.release()
        read = 0

        def chunks() -> Iterator[bytes]:
            nonlocal read
            for chunk in resp.iter_bytes(RESULTS_CHUNK):
                read += len(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
                yield chunk

        try:
            yield from iter_results(chunks(), body)
        except httpx.TransportError as e:
            raise GatewayBadResponse(
                f"the results body of {batch_id} broke off after {read:,} bytes "
                f"({type(e).__name__})") from None
        except BodyError as e:
            raise GatewayBadResponse(f"the results body of {batch_id} is unreadable: {e}",
                                     payload=b"", unreadable=not e.cut) from None
        finally:
            resp.close()
            held.release()

    def _get_once(self, path: str, params: dict[str, Any], decode: Callable[[bytes], Any]
                  ) -> Any:
        what = f"GET {path.split('/')[1] if path.count('/') > 1 else path}"
        try:
            if self._direct is not None:
                resp = self._direct.handle_request(httpx.Request(
                    "GET", self._base + path, params=params, headers=self._headers,
                    extensions=self._extensions))
                try:
                    body = resp.read()
                finally:
                    resp.close()
            else:
                resp = self._http.get(path, params=params)
                body = resp.read()
        except httpx.TransportError as e:
            raise self._transport_error(e) from None
        self._reached = True
        status = resp.status_code
        if status < 300:
            try:
                return decode(body)
            except orjson.JSONDecodeError as e:
                raise Retryable(GatewayBadResponse(
                    f"{what}: the gateway sent a body that is not JSON ({e})",
                    payload=body[:100_000])) from None
        raise_for_status(status, body, resp.headers.get("Retry-After"))

    def _transport_error(self, e: httpx.HTTPError) -> Retryable | GatewayUnreachable:
        return transport_error(e, where=self._where, reached=self._reached,
                               timeout_s=self.settings.timeout_s)

    # -- the batch API ---------------------------------------------------------------------
    def retrieve_batch(self, provider: str, batch_id: str, *, slot: Slot | None = None,
                       nested: bool = False) -> Any:
        """``GET /v1/batches/{batch_id}?provider=…`` under the window; ids may hold '/' and
        ':'. ``slot``: one the caller acquired for the first attempt (released here);
        ``nested``: asked on behalf of a request that holds a slot already (a Bedrock
        batch's model, while its results body streams): let in at once, since waiting for
        the window could wait for the caller's own slot."""
        path = f"/v1/batches/{quote(batch_id, safe='')}"
        first = [slot] if slot is not None else []

        def attempt() -> tuple[Any, Slot]:
            return self._limited("retrieve", lambda: self._get_once(
                path, {"provider": provider}, orjson.loads), first, nested)

        try:
            obj, held = self._with_retries(attempt)
        finally:
            for unused in first:
                unused.release()
        held.release()  # the body is read: a retrieve's time is its answer's (a few KB)
        return obj

    def retrieve_many(self, provider: str, batch_ids: Iterable[str]
                      ) -> Iterator[tuple[str, Any]]:
        """Retrieve many batches, as many at once as the window lets in; yields (id, object
        or GatewayError) in input order."""

        def one(bid: str, slot: Slot) -> tuple[str, Any]:
            try:
                return bid, self.retrieve_batch(provider, bid, slot=slot)
            except GatewayError as e:
                return bid, e

        running: deque[Future[tuple[str, Any]]] = deque()
        with ThreadPoolExecutor(max_workers=self.limit.maximum,
                                thread_name_prefix=f"retrieve-{provider}") as pool:
            for bid in batch_ids:
                while running and running[0].done():
                    yield running.popleft().result()
                slot = self.limit.acquire()  # the window decides how many run at once
                assert slot is not None
                running.append(pool.submit(one, bid, slot))
            while running:
                yield running.popleft().result()

    def list_pages(self, provider: str, *, report: ListingReport | None = None,
                   after: str | None = None, typed: bool = False) -> Iterator[Page]:
        """Page through ``GET /v1/batches`` newest first (gateway/listing.py)."""
        return list_pages(self.get_json, self.settings, provider, report=report, after=after,
                          typed=typed)
