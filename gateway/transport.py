"""An httpx transport over the standard library's ``http.client``: batchlake's HTTP/1.1 wire.

httpx is batchlake's HTTP client: requests, responses, headers, timeouts, content decoding and
the exception types the gateway client handles all stay httpx's. A transport is the part of
httpx that moves bytes; httpx's own (httpcore and h11, pure Python) spent ~0.33 ms of CPU
per 100 KB list page here, holding the GIL that flattening needs, where ``http.client``
(buffered reads in C; only its header parsing, through the email package, is Python) spends
~0.12 ms. Measured on the wild five-provider mix (100k objects, 1,000 pages): the sync 1.10x
and 1.04x the code before it in two same-run comparisons (bench/bench_sync.py).

What it does and does not do:
- HTTP/1.1 with keep-alive: one pool of idle connections per (scheme, host, port), reused
  last-in first-out. A reused connection that the server had closed is retried once on a
  fresh one before anything is reported (only for a connection that failed before any
  response byte arrived; batchlake's requests are GETs).
- https verifies certificates with the system's store (or ``SSL_CERT_FILE``), unless
  ``verify=False``; the context is built on the first https connection only.
- Timeouts: the request's connect timeout for connecting, its read timeout for every read.
- No proxy support: where an environment proxy applies, the gateway client lets httpx
  use its own transport (see ``gateway/client.py``).
- Failures are httpx's exception types (``ConnectError``, ``ConnectTimeout``,
  ``ReadTimeout``, ``ReadError``, ``RemoteProtocolError``…), so callers handle them as
  they would from httpx's transport; a body shorter than its Content-Length is a
  ``RemoteProtocolError``, never a silently short body.
"""

from __future__ import annotations

import http.client
import logging
import ssl
import threading
from collections.abc import Iterator

import httpx

# Bytes asked of the socket per read while a body streams: a list page (~100 KB) arrives in
# one read; a results body of hundreds of MB streams in steps of this size.
READ_CHUNK = 1 << 18
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Failures of a kept-alive connection that the server closed while it was idle.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
          ConnectionAbortedError)

_Key = tuple[str, str, int]
# Connections and requests at DEBUG (``BATCHLAKE_LOG_LEVEL=DEBUG``): host, port, method, path
# and status only; never headers, so never a key.
log = logging.getLogger("batchlake.gateway.transport")


class StdlibTransport(httpx.BaseTransport):
    """Send httpx requests over pooled ``http.client`` connections.

    >>> client = httpx.Client(transport=StdlibTransport(), base_url="http://localhost:8080")

    ``verify``: check https certificates (default True). ``max_idle``: idle connections kept
    per host for reuse; more may be open at once, one per thread using the transport.
    """

    def __init__(self, *, verify: bool = True, max_idle: int = 10) -> None:
        self._verify = verify
        self._max_idle = max_idle
        self._ssl_context: ssl.SSLContext | None = None
        self._idle: dict[_Key, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._closed = False

    # -- httpx.BaseTransport -------------------------------------------------------------
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}",
                                            request=request)
        key = (url.scheme, url.host, url.port or _DEFAULT_PORTS[url.scheme])
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        body = request.read()
        for attempt in (1, 2):
            conn, reused = self._checkout(key, timeouts, request)
            try:
                _send(conn, request, body)
                response = conn.getresponse()
            except _STALE as e:
                conn.close()
                if reused and attempt == 1:  # the server closed it while idle
                    log.debug("%s:%d closed a kept-alive connection (%s); sending again on a "
                              "new one", key[1], key[2], type(e).__name__)
                    continue
                raise _read_error(e, request) from e
            except Exception as e:
                conn.close()
                raise _read_error(e, request) from e
            except BaseException:  # an interrupt: the connection is in an unknown state
                conn.close()
                raise
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s %s:%d%s -> %d (%s connection)", request.method, key[1], key[2],
                          url.raw_path.decode("ascii"), response.status,
                          "kept-alive" if reused else "new")
            return httpx.Response(
                response.status,
                headers=response.getheaders(),
                stream=_Body(self, key, conn, response, request),
                extensions={"http_version": b"HTTP/1.1",
                            "reason_phrase": response.reason.encode("ascii", "replace")},
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    # -- the pool ------------------------------------------------------------------------
    def _checkout(self, key: _Key, timeouts: dict[str, float | None], request: httpx.Request
                  ) -> tuple[http.client.HTTPConnection, bool]:
        """An idle connection to ``key`` (reused: True), else a new, connected one."""
        with self._lock:
            conns = self._idle.get(key)
            conn = conns.pop() if conns else None
        if conn is not None and conn.sock is not None:
            conn.sock.settimeout(timeouts.get("read"))
            return conn, True
        scheme, host, port = key
        if scheme == "https":
            conn = http.client.HTTPSConnection(host, port, timeout=timeouts.get("connect"),
                                               context=self._context())
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeouts.get("connect"))
        try:
            conn.connect()
        except TimeoutError as e:
            conn.close()
            raise httpx.ConnectTimeout(str(e) or "connect timed out", request=request) from e
        except OSError as e:  # refused, unreachable, DNS, TLS handshake and certificate
            conn.close()
            raise httpx.ConnectError(str(e), request=request) from e
        assert conn.sock is not None
        conn.sock.settimeout(timeouts.get("read"))
        log.debug("connected to %s://%s:%d", scheme, host, port)
        return conn, False

    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:  # built once, on the first https connection
            self._ssl_context = httpx.create_ssl_context(verify=self._verify)
        return self._ssl_context

    def _release(self, key: _Key, conn: http.client.HTTPConnection) -> None:
        """A connection whose response was read to its end: kept for the next request."""
        with self._lock:
            if not self._closed:
                conns = self._idle.setdefault(key, [])
                if len(conns) < self._max_idle:
                    conns.append(conn)
                    return
        conn.close()


def _send(conn: http.client.HTTPConnection, request: httpx.Request, body: bytes) -> None:
    # httpx has set Host (and Accept-Encoding, where the client asks for it): http.client
    # adds neither of its own.
    conn.putrequest(request.method, request.url.raw_path.decode("ascii"),
                    skip_host=True, skip_accept_encoding=True)
    for name, value in request.headers.raw:
        conn.putheader(name, value)
    conn.endheaders(body or None)


def _read_error(e: Exception, request: httpx.Request) -> httpx.TransportError:
    """httpx's exception for a failure after the connection was made."""
    if isinstance(e, httpx.TransportError):
        return e
    if isinstance(e, TimeoutError):
        return httpx.ReadTimeout(str(e) or "read timed out", request=request)
    if isinstance(e, http.client.HTTPException | ConnectionError):
        return httpx.RemoteProtocolError(f"{type(e).__name__}: {e}", request=request)
    return httpx.ReadError(f"{type(e).__name__}: {e}", request=request)


class _Body(httpx.SyncByteStream):
    """A response body read from its connection as httpx iterates it. Read to its end, the
    connection goes back to the pool (unless the server said it closes it); closed early,
    or broken, the connection is closed."""

    def __init__(self, transport: StdlibTransport, key: _Key,
                 conn: http.client.HTTPConnection, response: http.client.HTTPResponse,
                 request: httpx.Request) -> None:
        self._transport, self._key, self._conn = transport, key, conn
        self._response, self._request = response, request
        self._complete = False
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        response = self._response
        try:
            if response.length is None:  # chunked, or delimited by the connection's close
                while chunk := response.read(READ_CHUNK):  # chunked: IncompleteRead if cut
                    yield chunk
            else:
                left = response.length
                while left:
                    # read(n) returns what came before the peer closed, without an error:
                    # a body shorter than its Content-Length is detected here.
                    chunk = response.read(min(READ_CHUNK, left))
                    if not chunk:
                        raise http.client.IncompleteRead(b"", left)
                    left -= len(chunk)
                    yield chunk
            self._complete = True
        except Exception as e:
            self.close()
            raise _read_error(e, self._request) from e
        except BaseException:  # GeneratorExit (closed early) or an interrupt
            self.close()
            raise

    def close(self) -> None:
        if self._done:
            return
        self._done = True
        if self._complete and not self._response.will_close:
            self._response.close()
            self._transport._release(self._key, self._conn)
        else:
            self._conn.close()

