"""Bifrost's batch routes: ``GET /v1/batches`` (a list page), ``GET /v1/batches/{id}`` (one
batch) and ``GET /v1/batches/{id}/results`` (a finished batch's results body).

They run after the gateway's own checks (simulator/http_handler.py: key, ``provider``), so
``ex.provider`` is a configured provider here.
"""

from __future__ import annotations

from urllib.parse import unquote

from batchlake.simulator.exchange import Exchange
from batchlake.simulator.fault_answers import answer_fault, send_body
from batchlake.simulator.injected_faults import BODY_FAULTS

MAX_LIMIT = 1000
DEFAULT_LIMIT = 20


def list_batches(ex: Exchange) -> None:
    gw, provider = ex.gateway, ex.provider or ""
    if answer_fault(ex, provider, "list"):
        return
    try:
        limit = int(ex.arg("limit") or DEFAULT_LIMIT)
    except ValueError:
        limit = DEFAULT_LIMIT
    limit = DEFAULT_LIMIT if limit <= 0 else min(limit, MAX_LIMIT)
    after = ex.arg("after")
    if not after and gw.auto_advance_s:
        gw.advance(gw.auto_advance_s)
    ex.send(200, gw.list_page(provider, limit, after))


def retrieve_batch(ex: Exchange) -> None:
    gw, provider = ex.gateway, ex.provider or ""
    if answer_fault(ex, provider, "retrieve"):
        return
    batch_id = unquote(ex.params["batch_id"])
    if gw.results_route == "list-only":  # a gateway that only lists
        ex.send_error(404, "Cannot GET /v1/batches/" + batch_id)
        return
    body = gw.retrieve(provider, batch_id)
    if body is None:
        ex.send_error(404, f"batch {batch_id} not found")
    else:
        ex.send(200, body)


def batch_results(ex: Exchange) -> None:
    gw, provider = ex.gateway, ex.provider or ""
    batch_id = unquote(ex.params["batch_id"])
    if gw.results_route == "missing":
        ex.send(404, b"404 page not found\n", content_type="text/plain")
        return
    if gw.results_route in ("bifrost-404", "list-only"):
        ex.send_error(404, "Cannot GET /v1/batches/" + batch_id + "/results")
        return
    body = gw.results(provider, batch_id)
    broken = gw.take_fault(provider, "results", BODY_FAULTS) if body else None
    if broken is None and answer_fault(ex, provider, "results", body_route=True):
        return
    if body is None:
        known = gw.knows_batch(provider, batch_id)
        status = 400 if known else 404
        ex.send_error(status, (
            f"batch {batch_id} has no results yet (not finished or no output)"
            if known else f"batch {batch_id} not found"))
        return
    send_body(ex, body, broken)
