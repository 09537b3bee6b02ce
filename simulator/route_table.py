"""The simulated gateway's routes: method + path pattern -> the function that answers.

A new route is one line here and its function in its own module. A route with a ``name`` is
one of the gateway's API routes: requests to it are counted under that name, checked for the
key and (``provider_required``) the ``provider`` query parameter before the function runs,
and the name is what faults (``Fault.endpoint``), latencies and in-flight caps refer to.
Routes without a name are the simulator's own (no key, not counted), or answer with checks of
their own (the logs API: Bifrost's admin auth, counted as ``logs`` by its function). The first
route whose method matches and whose pattern matches the whole path answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from batchlake.simulator.batch_routes import batch_results, list_batches, retrieve_batch
from batchlake.simulator.control_routes import health, sim_advance, sim_faults, sim_stats
from batchlake.simulator.exchange import Exchange
from batchlake.simulator.files_routes import batch_create, file_content, file_upload
from batchlake.simulator.logs_routes import logs_api


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    run: Callable[[Exchange], None]
    name: str | None = None
    provider_required: bool = True


def route(method: str, pattern: str, run: Callable[[Exchange], None], name: str | None = None,
          *, provider_required: bool = True) -> Route:
    return Route(method, re.compile(pattern, re.DOTALL), run, name, provider_required)


ROUTES: tuple[Route, ...] = (
    route("GET", "/_sim/stats", sim_stats),
    route("GET", "/health", health),
    route("POST", "/_sim/advance", sim_advance),
    route("POST", "/_sim/faults", sim_faults),
    route("GET", "/v1/batches", list_batches, "list"),
    # "/v1/batches/results" too: a results request with an empty id
    route("GET", "/v1/batches(?:/(?P<batch_id>.*))?/results", batch_results, "results"),
    route("GET", "/v1/batches/(?P<batch_id>.*)", retrieve_batch, "retrieve"),
    # input files, uploads and batch creation (simulator/files_routes.py)
    route("GET", "/v1/files/(?P<file_id>.+)/content", file_content, "file_content"),
    route("POST", "/v1/files", file_upload, "file_upload", provider_required=False),
    route("POST", "/v1/batches", batch_create, "batch_create", provider_required=False),
    # Bifrost's management API (its own auth, not the inference key): the batch cost rows
    route("GET", "/api/logs(?:/.*)?", logs_api),
)

ROUTE_NAMES: frozenset[str] = frozenset(r.name for r in ROUTES if r.name)


def find_route(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The route answering ``method path`` and its pattern's named groups ("" if unset)."""
    for r in ROUTES:
        if r.method == method:
            m = r.pattern.fullmatch(path)
            if m is not None:
                return r, m.groupdict(default="")
    return None
