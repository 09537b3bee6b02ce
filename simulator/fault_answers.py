"""How an injected request fault answers (simulator/injected_faults.py says which are due):
an error status, a reset or truncated connection, a malformed body, a delay."""

from __future__ import annotations

import email.utils
import time

from batchlake.simulator.exchange import Exchange
from batchlake.simulator.injected_faults import BODY_ROUTE_REQUEST_FAULTS, REQUEST_FAULTS, Fault

CHUNK = 1 << 20  # a large body (results, an input file) goes out in parts of this size


def send_body(ex: Exchange, body: bytes, broken: Fault | None,
              content_type: str = "application/json") -> None:
    """A 200 with ``body`` in parts, ``Content-Length`` set. ``broken`` (a reset or
    truncated fault) breaks it off half way: after a reset, or short of its length."""
    ex.begin(200, len(body), content_type)
    end = len(body) // 2 if broken is not None else len(body)
    view = memoryview(body)
    for start in range(0, end, CHUNK):
        ex.write(view[start:min(end, start + CHUNK)])
    if broken is not None:
        if broken.kind == "reset":
            ex.reset()
        else:
            ex.close_after()


def answer_fault(ex: Exchange, provider: str, endpoint: str, *, body_route: bool = False
                 ) -> bool:
    """Apply the next request fault due for this request; True when it answered (or broke)
    the request, False when the request goes on (no fault, or only a delay).
    ``body_route``: the body faults are not request faults here (see ``BODY_FAULTS``)."""
    kinds = BODY_ROUTE_REQUEST_FAULTS if body_route else REQUEST_FAULTS
    f = ex.gateway.take_fault(provider, endpoint, kinds)
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
        ex.send_error(f.status, f"injected {f.status}", headers=headers)
        return True
    if f.kind == "unconfigured":
        ex.send_error(400, f"provider {provider} is not configured on this gateway")
        return True
    if f.kind == "reset":
        ex.reset()
        return True
    if f.kind == "malformed":
        ex.send(200, b'{"data": [{"id": "batch_x", "status": ')
        return True
    if f.kind == "truncated":
        ex.begin(200, 5000)
        ex.write(b'{"data": [')
        ex.close_after()
        return True
    return False
