"""The results stage: every request of every finished batch, with its cost.

Per provider, after its batches are synced: the finished batches whose results are not stored
yet (warehouse/results.py decides which) are read from ``GET /v1/batches/{id}/results``
(``concurrency`` at a time). Each body streams through the parser (gateway/stream.py) into
flattened parts staged as Parquet, so memory stays flat at any body size; groups of batches
are then loaded, priced in SQL, in one transaction each. Faults are per batch: a transient one
(5xx, 429, a reset, a body that breaks off) is retried on a later run with backoff; a batch
with no output (404 gone, 403, 400) is recorded as unavailable with the reason.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import polars as pl

from batchlake.common.errors import (
    GatewayBadResponse,
    GatewayError,
    GatewayServerError,
    GatewayUnreachable,
)
from batchlake.common.runtime import paused_gc
from batchlake.gateway import ResultsBody
from batchlake.run import ProviderResult, RunContext, now_utc
from batchlake.transforms.redact import scrub_text
from batchlake.transforms.results import flatten_results
from batchlake.warehouse import Warehouse
from batchlake.warehouse import results as store

PART_LINES = 20_000  # lines flattened (and staged) at a time: Python holds one part
# A load transaction commits once its batches hold this many lines (small batches' lines wait
# in memory until then: ~25 MB at this size)
GROUP_LINES = 100_000
GROUP_BATCHES = 500  # … or this many batches (small batches: one transaction, not 500)


def read_batch(wh: Warehouse, ctx: RunContext, provider: str, todo: store.PendingBatch
               ) -> store.BatchOutcome:
    """Stream one batch's results into staged parts; never raises for the batch's faults."""
    outcome = store.BatchOutcome(provider, todo.batch_id, "loaded", replace=todo.replace)
    model = todo.model if todo.model is not None else _model_by_retrieve(ctx, provider, todo)
    body = ResultsBody()
    items: list[Any] = []
    store_body = ctx.settings.store_result_bodies

    def flush(last: bool) -> None:
        if not items:
            return
        flat = flatten_results(items, outcome.lines + outcome.rejected_lines, provider,
                               todo.batch_id, model, store_body=store_body)
        items.clear()
        frame = flat.frame.with_columns(pl.lit(ctx.run_id, pl.String).alias("run_id"))
        if last and not outcome.files:
            outcome.frames.append(frame)  # a small batch: staged with its group
        else:
            path = wh.stage_path("results")
            frame.write_parquet(path, compression="lz4", statistics=False)
            outcome.files.append(path)
        outcome.lines += flat.frame.height
        outcome.rejected_lines += len(flat.rejects)
        outcome.rejects.extend(flat.rejects)

    try:
        with paused_gc():  # hundreds of thousands of small dicts, dropped part by part
            for item in ctx.client.stream_results(provider, todo.batch_id, body):
                items.append(item)
                if len(items) >= PART_LINES:
                    flush(last=False)
            flush(last=True)
    except GatewayError as e:
        outcome.remove()
        outcome.files, outcome.lines, outcome.rejected_lines = [], 0, 0
        outcome.rejects = []
        outcome.error = scrub_text(" ".join(str(e).split()), ctx.settings.auth.secrets())[:500]
        outcome.status = e.status
        transient = isinstance(e, GatewayServerError | GatewayUnreachable | GatewayBadResponse)
        outcome.state = "retry" if transient else "unavailable"
        outcome.unreadable = isinstance(e, GatewayBadResponse) and e.unreadable
        if isinstance(e, GatewayBadResponse):  # an unreadable body: one reject per attempt
            outcome.rejects = [{"provider": provider, "batch_id": todo.batch_id,
                                "reason": f"results body unreadable: {outcome.error}",
                                "payload": None}]
        return outcome
    for pe in (body.extra_fields.get("parse_errors") or []):
        outcome.parse_errors += 1
        outcome.rejects.append({
            "provider": provider, "batch_id": todo.batch_id,
            "reason": "the gateway could not parse results output line "
                      f"{pe.get('line') if isinstance(pe, dict) else '?'}: "
                      f"{(pe.get('message') if isinstance(pe, dict) else pe)!s:.300}",
            "payload": None})
    if body.has_more:
        outcome.error = "the results say has_more; only the first body was read"
    return outcome


# Providers whose list pages leave the batch's model out while their result lines may not
# name one either: Bifrost's Bedrock listing carries no model_requested, and Llama and Nova
# bodies carry no model (only Claude's do). One retrieve of the batch names it.
MODEL_BY_RETRIEVE = frozenset({"bedrock"})


def _model_by_retrieve(ctx: RunContext, provider: str, todo: store.PendingBatch
                       ) -> str | None:
    """The batch's model from ``GET /v1/batches/{id}`` (its extra_fields.model_requested),
    for a provider whose listing leaves it out; None when that does not say either."""
    if provider not in MODEL_BY_RETRIEVE:
        return None
    try:
        obj = ctx.client.retrieve_batch(provider, todo.batch_id)
    except GatewayError:
        return None  # the lines that name no model say so ("no model in the line…")
    extra = obj.get("extra_fields") if isinstance(obj, dict) else None
    model = extra.get("model_requested") if isinstance(extra, dict) else None
    return model if isinstance(model, str) and model else None


def sync_results(ctx: RunContext, provider: str, result: ProviderResult, *,
                 batch_ids: list[str] | None = None, refetch: bool = False) -> None:
    """Read and load the results of ``provider``'s finished batches (see the module)."""
    wh = ctx.warehouse
    if not isinstance(wh, Warehouse):
        return  # a remote worker: the flow process reads results after loading batches
    todo = store.pending(wh, provider, refetch=refetch, now=ctx.started_at,
                         batch_ids=batch_ids, limit=ctx.settings.results_limit)
    if not todo:
        return
    group: list[store.BatchOutcome] = []
    lines = 0

    def commit() -> None:
        nonlocal group, lines
        if group:
            store.load_group(wh, group, run_id=ctx.run_id, at=now_utc(), prices=ctx.prices)
        group, lines = [], 0

    with ThreadPoolExecutor(max_workers=ctx.settings.concurrency,
                            thread_name_prefix=f"results-{provider}") as pool:
        try:
            for outcome in pool.map(lambda t: read_batch(wh, ctx, provider, t), todo):
                if outcome.state == "loaded":
                    result.results_batches += 1
                    result.result_lines += outcome.lines
                    if outcome.error:
                        result.warnings.append(f"results of {outcome.batch_id}: "
                                               f"{outcome.error}")
                else:
                    result.results_failed += 1
                group.append(outcome)
                lines += outcome.lines
                if lines >= GROUP_LINES or len(group) >= GROUP_BATCHES:
                    commit()
            commit()
        finally:
            for o in group:  # after a failure: staged parts that will not be loaded
                o.remove()
    if result.results_failed:
        result.warnings.append(f"{result.results_failed} finished batches' results could not "
                               "be read (see batch_results_state)")
