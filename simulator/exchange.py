"""One request to the simulated gateway as a route function sees it: the parsed URL, the
route pattern's parameters, the body, and the ways to answer (whole, in parts, or by breaking
the connection)."""

from __future__ import annotations

from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from batchlake.simulator.gateway_model import GatewayModel


def error_body(status: int, message: str, bifrost: bool = True) -> bytes:
    """Bifrost's error body; ``bifrost=False`` for errors a provider or a router raised."""
    return orjson.dumps({
        "is_bifrost_error": bifrost, "status_code": status,
        "error": {"message": message}, "extra_fields": {},
    })


@dataclass
class Exchange:
    """A request and its answer. ``params`` holds the route pattern's named groups."""

    handler: BaseHTTPRequestHandler
    gateway: GatewayModel
    path: str
    query: dict[str, list[str]]
    params: dict[str, str]
    body: bytes = b""

    def arg(self, name: str) -> str | None:
        """The first value of query parameter ``name``."""
        values = self.query.get(name)
        return values[0] if values else None

    @property
    def provider(self) -> str | None:
        return self.arg("provider")

    def send(self, status: int, body: bytes, headers: dict[str, str] | None = None,
             content_type: str = "application/json") -> None:
        self.begin(status, len(body), content_type, headers)
        self.handler.wfile.write(body)

    def send_error(self, status: int, message: str, bifrost: bool = True,
                   headers: dict[str, str] | None = None) -> None:
        self.send(status, error_body(status, message, bifrost), headers)

    def begin(self, status: int, length: int, content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        """Send the status line and headers; the body follows through ``write``."""
        h = self.handler
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(length))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()

    def write(self, data: bytes | memoryview) -> None:
        self.handler.wfile.write(data)

    def close_after(self) -> None:
        """Close the connection once this answer is out (no keep-alive)."""
        self.handler.close_connection = True

    def reset(self) -> None:
        """Break the connection now, as a network cut does."""
        self.handler.close_connection = True
        self.handler.wfile.flush()
        self.handler.connection.shutdown(2)
