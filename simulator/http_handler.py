"""The simulated gateway's HTTP side: a threading HTTP/1.1 server (a thread per connection)
whose handler finds the route (simulator/route_table.py), runs the gateway's checks for API
routes (the key, the ``provider`` parameter), paces it (simulator/route_pacing.py: a 429 at
once beyond the route's cap in flight, else its latency) and hands the request to the route's
function."""

from __future__ import annotations

import base64
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from batchlake.simulator.exchange import Exchange
from batchlake.simulator.route_table import Route, find_route

if TYPE_CHECKING:
    from email.message import Message

    from batchlake.simulator.gateway_model import GatewayModel


class SimHTTPServer(ThreadingHTTPServer):
    """The server of one ``SimGateway``; its handler reaches the gateway as
    ``self.server.gateway``."""

    daemon_threads = True
    # Clients open many connections at once (a results stage with dozens in flight); past
    # the default backlog of 5 the kernel drops connects, which retry a second or more later.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], gateway: GatewayModel) -> None:
        self.gateway = gateway
        super().__init__(address, SimRequestHandler)


def authorized(headers: Message, api_key: str | None) -> bool:
    """Whether the request carries the gateway's key, in any of the ways Bifrost takes it."""
    if not api_key:
        return True
    auth = headers.get("Authorization", "")
    if auth == f"Bearer {api_key}":
        return True
    if auth.startswith("Basic "):
        try:
            _, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
        except Exception:
            return False
        return pw == api_key
    return headers.get("x-api-key") == api_key or headers.get("x-bf-vk") == api_key


class SimRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle's algorithm on, the client's delayed
    # ACK would hold back every answer (docs/scaling.md, the simulated gateway).
    disable_nagle_algorithm = True
    server: SimHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        body = b""
        if method == "POST":
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
        found = find_route(method, url.path)
        params: dict[str, str] = found[1] if found else {}
        ex = Exchange(self, self.server.gateway, url.path, parse_qs(url.query), params, body)
        if found is None:
            ex.send_error(404, f"no route for {url.path}" if method == "GET" else "not found",
                          bifrost=False)
            return
        route = found[0]
        if route.name is None:
            route.run(ex)
        elif self._admitted(ex, route, route.name):
            self._paced(ex, route, route.name)

    def _admitted(self, ex: Exchange, route: Route, name: str) -> bool:
        """The checks Bifrost makes before it asks a provider; False when they answered."""
        gw, provider = ex.gateway, ex.provider
        gw.count_request(name, provider or "")
        if not authorized(self.headers, gw.api_key):
            ex.send_error(401, "Invalid API key provided")
            return False
        if not route.provider_required:
            return True
        if not provider:
            ex.send_error(400, "provider query parameter is required", bifrost=False)
            return False
        if provider not in gw.providers:
            ex.send_error(400, f"provider {provider} is not configured on this gateway")
            return False
        return True

    def _paced(self, ex: Exchange, route: Route, name: str) -> None:
        """Answer at the route's pace: 429 at once beyond its cap in flight, else after its
        latency. This thread serves one connection, so a plain wait keeps a kept-alive
        connection's answers in order."""
        pacing = ex.gateway.pacing
        if not pacing.admit(name):
            message, headers = pacing.throttled_answer(name)
            ex.send_error(429, message, bifrost=False, headers=headers)
            return
        try:
            pacing.wait(name)
            route.run(ex)
        finally:
            pacing.release(name)
