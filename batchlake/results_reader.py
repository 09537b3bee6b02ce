"""Reading one finished batch's results: ``GET /v1/batches/{id}/results`` streamed through
the parser (gateway/stream.py) and flattened into parts staged as Parquet, whatever the body's
size. What the run's readers hold unstaged is bounded in bytes across them (``HeldBytes``), so
the window of requests in flight does not multiply memory. A batch's faults end in its
``BatchOutcome`` (retry or unavailable, with the reason), never as an exception. The results
stage (batchlake/results_stage.py) decides which batches are read, and when.
"""

from __future__ import annotations

import threading
from typing import Any

import polars as pl

from batchlake.common import (
    GatewayBadResponse,
    GatewayError,
    GatewayServerError,
    GatewayUnreachable,
    Settings,
    paused_gc,
)
from batchlake.gateway import ResultsBody, Slot
from batchlake.results_route import retrieved
from batchlake.run import RunContext, one_line
from batchlake.transforms import constant_column, flatten_results
from batchlake.warehouse import BatchOutcome, PendingBatch, Warehouse

PART_LINES = 20_000  # lines flattened (and staged) at a time: Python holds one part
PART_BYTES = 8 << 20  # … or this many body bytes' worth, whichever comes first
# Body bytes all readers may hold unstaged (items not yet flattened) before each stages what
# it holds, once that is at least MIN_PART_BYTES: the window does not multiply memory.
HELD_BYTES = 32 << 20
MIN_PART_BYTES = 512 << 10

class HeldBytes:
    """Bytes of results bodies the run's readers hold unstaged, summed across readers."""

    def __init__(self, budget: int = HELD_BYTES) -> None:
        self.budget = budget
        self.held = 0
        self.peak = 0
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self.held += n
            self.peak = max(self.peak, self.held)

    def give_back(self, n: int) -> None:
        with self._lock:
            self.held -= n

    @property
    def over(self) -> bool:
        return self.held > self.budget


def read_batch(wh: Warehouse, ctx: RunContext, provider: str, todo: PendingBatch,
               slot: Slot | None = None, held: HeldBytes | None = None) -> BatchOutcome:
    """Stream one batch's results into staged parts; never raises for the batch's faults.
    ``slot``: the window's place the request goes in (released once the body is read);
    ``held``: the run's count of unstaged body bytes."""
    outcome = BatchOutcome(provider, todo.batch_id, "loaded", replace=todo.replace,
                                 listed_now=todo.listed_now)
    model = todo.model
    # asked at most once, and only when lines need it (see MODEL_BY_RETRIEVE)
    may_retrieve = model is None and provider in MODEL_BY_RETRIEVE
    body = ResultsBody()
    items: list[Any] = []
    store_body = ctx.settings.store_result_bodies
    held = held if held is not None else HeldBytes()
    unstaged = 0  # body bytes read since the last part was staged

    def on_bytes(n: int) -> None:
        nonlocal unstaged
        unstaged += n
        held.add(n)

    def flush(last: bool) -> None:
        nonlocal model, may_retrieve, unstaged
        held.give_back(unstaged)
        unstaged = 0
        if not items:
            return
        first = outcome.lines + outcome.rejected_lines
        flat = flatten_results(items, first, provider, todo.batch_id, model,
                               store_body=store_body)
        if may_retrieve and _lines_without_model(flat.frame):
            may_retrieve = False
            model = _model_by_retrieve(ctx, provider, todo)
            if model is not None:
                flat = flatten_results(items, first, provider, todo.batch_id, model,
                                       store_body=store_body)
        items.clear()
        frame = flat.frame.hstack([constant_column("run_id", ctx.run_id, flat.frame.height)])
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
            for item in ctx.client.stream_results(provider, todo.batch_id, body, slot=slot,
                                                  on_bytes=on_bytes):
                items.append(item)
                if (len(items) >= PART_LINES or unstaged >= PART_BYTES
                        or (held.over and unstaged >= MIN_PART_BYTES)):
                    flush(last=False)
            flush(last=True)
    except GatewayError as e:
        outcome.remove()
        outcome.files, outcome.lines, outcome.rejected_lines = [], 0, 0
        outcome.rejects = []
        outcome.error, transient = fault_of(e, ctx.settings)
        outcome.status = e.status
        outcome.state = "retry" if transient else "unavailable"
        outcome.unreadable = isinstance(e, GatewayBadResponse) and e.unreadable
        outcome.route_suspect = e.status in (404, 405) and not e.bifrost_body
        outcome.same_suspect = e.status == 404 and e.bifrost_body
        if isinstance(e, GatewayBadResponse):  # an unreadable body: one reject per attempt
            outcome.rejects = [{"provider": provider, "batch_id": todo.batch_id,
                                "reason": f"results body unreadable: {outcome.error}",
                                "payload": None}]
        return outcome
    finally:
        held.give_back(unstaged)
        unstaged = 0
        if slot is not None:
            slot.release()  # already, unless the request never went out
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


def fault_of(e: GatewayError, settings: Settings) -> tuple[str, bool]:
    """A failed file read's reason in one line (secrets scrubbed), and whether a later run
    asks again: a 5xx, an unreachable gateway or a broken body may pass; 4xx will not."""
    transient = isinstance(e, GatewayServerError | GatewayUnreachable | GatewayBadResponse)
    return one_line(str(e), settings), transient


# Providers whose list pages leave the batch's model out while their result lines may not
# name one either: Bifrost's Bedrock listing carries no model_requested, and Llama and Nova
# bodies carry no model (only Claude's do). One retrieve of the batch names it, asked only
# for a batch whose lines need it.
MODEL_BY_RETRIEVE = frozenset({"bedrock"})


def _lines_without_model(frame: pl.DataFrame) -> bool:
    """Lines with usage that name no model: they cannot be priced without the batch's."""
    # Counted in Python, not with a select or Series.is_null: each runs a query plan, and
    # this asks once per body (a part holds at most PART_LINES lines).
    models = frame.get_column("model")
    if models.null_count() == 0:
        return False
    return any(m is None and t is not None
               for m, t in zip(models.to_list(), frame.get_column("input_tokens").to_list(),
                               strict=True))


def _model_by_retrieve(ctx: RunContext, provider: str, todo: PendingBatch
                       ) -> str | None:
    """The batch's model from ``GET /v1/batches/{id}`` (its extra_fields.model_requested),
    for a provider whose listing leaves it out; None when that does not say either (the
    lines that name no model then say so: "no model in the line…")."""
    return model_requested(retrieved(ctx, provider, todo.batch_id, nested=True))


def model_requested(obj: Any) -> str | None:
    """A retrieved batch's model as Bifrost names it (``extra_fields.model_requested``)."""
    extra = obj.get("extra_fields") if isinstance(obj, dict) else None
    model = extra.get("model_requested") if isinstance(extra, dict) else None
    return model if isinstance(model, str) and model else None
