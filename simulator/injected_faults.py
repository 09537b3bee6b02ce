"""Faults injected into the simulated gateway's answers, switched on per test
(``SimGateway.faults``) or over HTTP (``POST /_sim/faults``, a JSON list of ``Fault`` fields).
"""

from __future__ import annotations

from dataclasses import dataclass

# Faults applied to a whole request; the others shape list pages.
REQUEST_FAULTS = {"status", "reset", "delay", "malformed", "truncated", "unconfigured"}
# On the routes that stream a body (results, file content) these break the body half way,
# and only a body: a request answered with an error leaves them to the next one.
BODY_FAULTS = frozenset({"reset", "truncated"})
BODY_ROUTE_REQUEST_FAULTS = REQUEST_FAULTS - BODY_FAULTS  # the rest, on a body's route


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
