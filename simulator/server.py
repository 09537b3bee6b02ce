"""The simulated Bifrost gateway: a real HTTP/1.1 server on 127.0.0.1.

It speaks the batch API as Bifrost does (``GET /v1/batches``, ``GET /v1/batches/{id}``,
``GET /v1/batches/{id}/results``, the required ``provider`` parameter, Bifrost's error body,
API-key checks) over a seeded population whose batches move through their lifecycle as the
simulated clock advances. Faults can be switched on per test (``SimGateway.faults``) or over
HTTP (``POST /_sim/faults``).

It can keep a real gateway's pace (simulator/route_pacing.py), per route name (``list``,
``retrieve``, ``results``): ``SimGateway(latency={"list": 0.3, "retrieve": 0.2,
"results": 0.6}, latency_jitter=0.1, max_inflight={"results": 12}, retry_after_s=1)`` waits
each route's latency (seconds, ± the jitter's share) before an answer's headers, and answers
a request 429 at once (``Retry-After: 1``, body ``{"is_bifrost_error": false, "status_code":
429, "error": {"message": …}, "extra_fields": {}}``) while 12 of its route are in flight.
What it did: ``gw.throttled`` (429s), ``gw.peak_inflight`` and ``gw.inflight`` (Counters by
route), and ``GET /_sim/stats``: ``{"now", "requests": {"route:provider": n}, "latency_s",
"latency_jitter", "max_inflight", "retry_after_s", "inflight", "peak_inflight",
"throttled"}`` (the last three {route: n}, a route not yet asked absent).

The model is simulator/gateway_model.py, the HTTP side simulator/http_handler.py and the routes
simulator/route_table.py; this module starts and stops the server.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from batchlake.simulator.gateway_model import GatewayModel
from batchlake.simulator.http_handler import SimHTTPServer
from batchlake.simulator.route_table import ROUTE_NAMES


class SimGateway(GatewayModel):
    """A population of batches behind an HTTP server. Use ``start()``/``stop()`` or ``with``;
    the constructor's parameters are ``GatewayModel``'s."""

    _server: SimHTTPServer | None = None

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a background thread; return the base URL."""
        self._check_routes()
        self._server = SimHTTPServer((host, port), self)
        threading.Thread(target=self._server.serve_forever, daemon=True,
                         name="sim-gateway").start()
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
        self._check_routes()
        self._server = SimHTTPServer((host, port), self)
        if on_ready is not None:
            on_ready(self.base_url)
        self._server.serve_forever()

    def _check_routes(self) -> None:
        unknown = self.pacing.routes() - ROUTE_NAMES
        if unknown:
            raise ValueError(f"no route named {', '.join(sorted(unknown))} to pace; routes: "
                             + ", ".join(sorted(ROUTE_NAMES)))

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
