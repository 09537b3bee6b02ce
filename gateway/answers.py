"""What a gateway's answer means: the error it is, whether it is worth another try, and how
long the gateway asks us to wait (``Retry-After``).

``gateway/client.py`` sends; this decides. Errors are the common layer's ``GatewayError``
types, so the stages above never see HTTP; a failure worth another try travels as
``Retryable`` (the client's retry loop unwraps it).
"""

from __future__ import annotations

import email.utils
import time
from typing import NoReturn

import httpx
import orjson

from batchlake.common import (
    GatewayAuthError,
    GatewayBadRequest,
    GatewayError,
    GatewayNotFound,
    GatewayServerError,
    GatewayUnreachable,
)

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class Retryable(Exception):
    """A failure worth another try; ``retry_after`` is the server's wish, in seconds.
    ``free``: the adaptive limit took it as its own window's fault (a 429 while the window
    was above its floor), so it does not use up one of the request's retries."""

    def __init__(self, error: GatewayError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after
        self.free = False

    @property
    def status(self) -> int | None:
        return self.error.status


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def is_bifrost_error(body: bytes) -> bool:
    """Whether a body is Bifrost's error body (``{"is_bifrost_error": …, "error": {…}}``),
    as its handlers answer, rather than a router's or a proxy's own page."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(data, dict) and ("is_bifrost_error" in data or
                                       isinstance(data.get("error"), dict))


def bifrost_message(body: bytes) -> str:
    """Bifrost's own error message from an error body, else a short excerpt."""
    try:
        data = orjson.loads(body)
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    except orjson.JSONDecodeError:
        pass
    text = body.decode("utf-8", "replace").strip().replace("\n", " ")
    return text[:200] or "no message"


def transport_error(e: httpx.HTTPError, *, where: str, reached: bool, timeout_s: float
                    ) -> Retryable | GatewayUnreachable:
    """An error before any answer: retryable, except a refused first connection (a wrong
    URL is one clear line, not a minute of retries) and a certificate this machine does
    not trust (it would fail every retry alike). ``where``: the gateway's URL, redacted;
    ``reached``: the gateway has answered this client before."""
    if isinstance(e, httpx.ConnectError) and "certificate verify failed" in str(e):
        # Not a blip and not a wrong URL: the same certificate fails every retry.
        reason = str(e).split("certificate verify failed", 1)[1].split("(_ssl")[0]
        return GatewayUnreachable(
            f"the gateway at {where} presented a TLS certificate this machine does "
            f"not trust (certificate verify failed{reason.rstrip()}); set SSL_CERT_FILE "
            "to the CA bundle that signed it, or pass --insecure to skip verification")
    if isinstance(e, httpx.ConnectError):
        err = GatewayUnreachable(
            f"cannot reach the gateway at {where} ({type(e).__name__}); "
            "check --base-url / BIFROST_BASE_URL and that the gateway is running")
        return err if not reached else Retryable(err)
    if isinstance(e, httpx.TimeoutException):
        return Retryable(GatewayUnreachable(
            f"the gateway at {where} timed out ({type(e).__name__}) after "
            f"{timeout_s:g}s; raise --timeout or check the gateway"))
    return Retryable(GatewayUnreachable(
        f"the connection to {where} failed ({type(e).__name__}: {str(e)[:120]})"))


def raise_for_status(status: int, body: bytes, retry_after: str | None) -> NoReturn:
    """The error an answer of ``status`` (>= 300) with ``body`` is: ``Retryable`` for the
    transient ones, with the server's Retry-After."""
    msg = bifrost_message(body)
    if status in RETRY_STATUSES:
        raise Retryable(
            GatewayServerError(f"gateway answered {status}: {msg}", status=status),
            parse_retry_after(retry_after))
    if status in (401, 403):
        raise GatewayAuthError(
            f"gateway refused the credentials ({status}: {msg}); check --api-key / "
            "BIFROST_API_KEY", status=status)
    bifrost = is_bifrost_error(body)
    if status == 404:
        raise GatewayNotFound(f"not found (404: {msg})", status=status,
                              bifrost_body=bifrost)
    if status == 400:
        raise GatewayBadRequest(f"gateway rejected the request (400: {msg})", status=400,
                                bifrost_body=bifrost)
    raise GatewayError(f"gateway answered {status}: {msg}", status=status,
                       bifrost_body=bifrost)
