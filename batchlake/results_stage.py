"""The results stage: every request of every finished batch, with its cost.

Once every provider's batches are committed, the finished batches whose results are not stored
yet (warehouse/results_store.py decides which) are read from ``GET /v1/batches/{id}/results``,
newest finished first across providers, a bounded window at a time, within the run's results
budget. Each body streams through the parser (gateway/stream.py) into flattened parts staged as
Parquet, so memory stays flat at any body size; groups of batches are then loaded, priced in
SQL, in one transaction each. Faults are per batch: a transient one (5xx, 429, a reset, a body
that breaks off) is retried on a later run with backoff; a batch with no output (404 gone,
403, 400) is recorded as unavailable with the reason.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from batchlake.common import (
    GatewayBadResponse,
    GatewayError,
    GatewayServerError,
    GatewayUnreachable,
    paused_gc,
)
from batchlake.gateway import ResultsBody
from batchlake.run import ProviderResult, RunContext, now_utc
from batchlake.transforms import flatten_results, scrub_text
from batchlake.warehouse import (
    RESULTS_MEMORY_LIMIT,
    RESULTS_RETENTION_DAYS,
    BatchOutcome,
    PendingBatch,
    Warehouse,
    load_results_group,
    pending_batch_counts,
    pending_batches,
    settle_past_retention,
)

PART_LINES = 20_000  # lines flattened (and staged) at a time: Python holds one part
# A load transaction commits once its batches hold this many lines (small batches' lines wait
# in memory until then: ~25 MB at this size)
GROUP_LINES = 100_000
GROUP_BATCHES = 500  # … or this many batches (small batches: one transaction, not 500)


def read_batch(wh: Warehouse, ctx: RunContext, provider: str, todo: PendingBatch
               ) -> BatchOutcome:
    """Stream one batch's results into staged parts; never raises for the batch's faults."""
    outcome = BatchOutcome(provider, todo.batch_id, "loaded", replace=todo.replace,
                                 listed_now=todo.listed_now)
    model = todo.model
    # asked at most once, and only when lines need it (see MODEL_BY_RETRIEVE)
    may_retrieve = model is None and provider in MODEL_BY_RETRIEVE
    body = ResultsBody()
    items: list[Any] = []
    store_body = ctx.settings.store_result_bodies

    def flush(last: bool) -> None:
        nonlocal model, may_retrieve
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
        outcome.route_suspect = e.status in (404, 405) and not e.bifrost_body
        outcome.same_suspect = e.status == 404 and e.bifrost_body
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
# bodies carry no model (only Claude's do). One retrieve of the batch names it, asked only
# for a batch whose lines need it.
MODEL_BY_RETRIEVE = frozenset({"bedrock"})


def _lines_without_model(frame: pl.DataFrame) -> bool:
    """Lines with usage that name no model: they cannot be priced without the batch's."""
    return frame.height > 0 and frame.select(
        (pl.col("model").is_null() & pl.col("input_tokens").is_not_null()).any()).item()


def _retrieved(ctx: RunContext, provider: str, batch_id: str) -> Any:
    """``GET /v1/batches/{id}``'s object, or None when the gateway does not give it."""
    try:
        return ctx.client.retrieve_batch(provider, batch_id)
    except GatewayError:
        return None


def _model_by_retrieve(ctx: RunContext, provider: str, todo: PendingBatch
                       ) -> str | None:
    """The batch's model from ``GET /v1/batches/{id}`` (its extra_fields.model_requested),
    for a provider whose listing leaves it out; None when that does not say either (the
    lines that name no model then say so: "no model in the line…")."""
    obj = _retrieved(ctx, provider, todo.batch_id)
    extra = obj.get("extra_fields") if isinstance(obj, dict) else None
    model = extra.get("model_requested") if isinstance(extra, dict) else None
    return model if isinstance(model, str) and model else None


@dataclass
class _Suspects:
    """404s that may say "no such route" rather than "no such results" (see _RouteWatch)."""

    outcomes: list[BatchOutcome] = field(default_factory=list)
    template: str | None = None


class _RouteWatch:
    """Tells a results route the gateway does not have from batches that have no results, so
    that a missing route costs a few requests a run, not one per batch, and settles nothing.

    - A 404 or 405 whose body is no Bifrost error body (a router's or proxy's own answer),
      ``ROUTE_MISSING_AFTER`` times in a row: the gateway has no results route. Every
      provider stops for this run.
    - Bifrost-bodied 404s, ``SAME_404_AFTER`` batches of a provider in a row, with one message
      (the batch id aside), for batches the gateway does know (this run's listing showed
      them all, or one retrieve finds one) or naming the route itself ("Cannot GET
      /v1/batches/…/results"): the gateway answers 404 for that provider's results whatever
      the batch. It stops. Batches that are really gone (neither listed now nor found by id,
      "batch … not found") are settled unavailable, each once.

    Suspect outcomes wait here, unrecorded: if the pattern breaks (a batch loads, another
    error), they were real and go to the load group; if it holds, they are dropped, so those
    batches are asked again at a later run."""

    ROUTE_MISSING_AFTER = 3
    SAME_404_AFTER = 5

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.missing: str | None = None  # the gateway-wide finding, one line
        self.stopped: dict[str, str] = {}  # provider -> the finding, one line
        self._plain = _Suspects()
        self._same: dict[str, _Suspects] = {}

    def stops(self, provider: str) -> bool:
        return self.missing is not None or provider in self.stopped

    def take(self, o: BatchOutcome) -> list[BatchOutcome]:
        """The outcomes to record now (``o`` and suspects it clears), in order."""
        if self.stops(o.provider):
            return [] if o.route_suspect or o.same_suspect else [o]
        if o.route_suspect:
            self._plain.outcomes.append(o)
            if len(self._plain.outcomes) >= self.ROUTE_MISSING_AFTER:
                self.missing = (f"the gateway has no results route: GET /v1/batches/{{id}}/"
                                f"results answered {o.status} without a Bifrost error body "
                                f"for {len(self._plain.outcomes)} batches in a row "
                                f"({o.error}); results are asked again at the next run")
                self._plain.outcomes.clear()
            return []
        out = self._plain.outcomes
        self._plain = _Suspects()
        same = self._same.setdefault(o.provider, _Suspects())
        if o.same_suspect:
            template = (o.error or "").replace(o.batch_id, "{id}")
            if same.template not in (None, template):
                out, same.outcomes = out + same.outcomes, []
            same.template = template
            same.outcomes.append(o)
            if len(same.outcomes) >= self.SAME_404_AFTER:
                if (all(s.listed_now for s in same.outcomes) or "/results" in template
                        or _retrieved(self.ctx, o.provider, o.batch_id) is not None):
                    self.stopped[o.provider] = (
                        f"the gateway answers 404 for {o.provider}'s results whatever the "
                        f"batch ({len(same.outcomes)} in a row, of batches it knows: "
                        f"{o.error}); results are asked again at the next run")
                    same.outcomes = []
                else:
                    out, same.outcomes = out + same.outcomes, []
            return out
        out, same.outcomes, same.template = out + same.outcomes + [o], [], None
        return out

    def drain(self) -> list[BatchOutcome]:
        """At the end: suspects that never made a pattern were real answers."""
        out = self._plain.outcomes
        for same in self._same.values():
            out += same.outcomes
        self._plain, self._same = _Suspects(), {}
        return out


PAGE_BATCHES = 2_000  # pending batches read from the database at a time
RELEASE_ROWS = 50_000  # rows (lines and states) written between re-attaches of the file


def run_results_stage(ctx: RunContext, results: dict[str, ProviderResult], *,
                 batch_ids: list[str] | None = None, refetch: bool = False,
                 budget_s: float | None = None,
                 on_progress: Callable[[int, int], None] | None = None) -> None:
    """Read and load the results of the finished batches of ``results``' providers, newest
    finished first, until ``budget_s`` seconds have passed (default: settings'; 0: no limit);
    what is left is the backlog, counted in each ``ProviderResult``. ``on_progress(done,
    total)`` after each batch. See the module."""
    wh = ctx.warehouse
    if not isinstance(wh, Warehouse) or not results:
        return  # a remote worker: the flow process reads results after loading batches
    wh.release_merged()  # the batch stage's row groups, before results need the memory cap
    with wh.memory_cap(RESULTS_MEMORY_LIMIT):
        _run_results_stage(ctx, wh, results, batch_ids=batch_ids, refetch=refetch,
                      budget_s=budget_s, on_progress=on_progress)


def _run_results_stage(ctx: RunContext, wh: Warehouse, results: dict[str, ProviderResult], *,
                  batch_ids: list[str] | None, refetch: bool, budget_s: float | None,
                  on_progress: Callable[[int, int], None] | None) -> None:
    settings = ctx.settings
    budget = settings.results_budget_s if budget_s is None else budget_s
    deadline = time.monotonic() + budget if budget > 0 else None
    providers = list(results)
    run_id, now = ctx.run_id, ctx.started_at
    if not refetch:
        for provider, n in settle_past_retention(
                wh, providers, now=now, run_id=run_id, batch_ids=batch_ids).items():
            if n:
                results[provider].warnings.append(
                    f"{n} batches past {provider}'s {RESULTS_RETENTION_DAYS[provider]}-day "
                    "results retention settled as unavailable without a request")
    total = sum(pending_batch_counts(wh, providers, refetch=refetch, now=now, run_id=run_id,
                                     batch_ids=batch_ids).values()) if on_progress else 0
    watch = _RouteWatch(ctx)
    taken: dict[str, int] = dict.fromkeys(providers, 0)
    limit = settings.results_limit
    group: list[BatchOutcome] = []
    lines = done = submitted = 0

    def record(o: BatchOutcome) -> None:
        nonlocal lines
        r = results[o.provider]
        if o.state == "loaded":
            r.results_batches += 1
            r.result_lines += o.lines
            if o.error:
                r.warnings.append(f"results of {o.batch_id}: {o.error}")
        else:
            r.results_failed += 1
        group.append(o)
        lines += o.lines

    def commit() -> None:
        nonlocal group, lines
        if group:
            load_results_group(wh, group, run_id=run_id, at=now_utc(), prices=ctx.prices)
            # DuckDB keeps every written row group's state until the file is re-attached:
            # a drain of 24,000 batches (120,000 lines) ran out of the 32MB cap without this
            wh.wrote(lines + len(group))
            wh.release_merged(RELEASE_ROWS)
        group, lines = [], 0

    def open_providers() -> list[str]:
        return [p for p in providers if not watch.stops(p)
                and (limit is None or taken[p] < limit)]

    ahead = max(1, settings.concurrency) * 2  # read ahead, bounded: memory stays flat
    # Slow start: one batch in flight, twice as many after each answer that is no suspect
    # of a missing route, so that a gateway without the route costs a few requests, not a
    # window's worth.
    window = 1
    inflight: deque[Future[BatchOutcome]] = deque()

    def consume() -> None:
        nonlocal done, window
        outcome = inflight.popleft().result()
        if not (outcome.route_suspect or outcome.same_suspect):
            window = min(ahead, window * 2)
        for o in watch.take(outcome):
            record(o)
        done += 1
        if on_progress:
            on_progress(done, total)

    out_of_time = False
    with ThreadPoolExecutor(max_workers=settings.concurrency,
                            thread_name_prefix="results") as pool:
        try:
            while True:
                todo = [] if out_of_time else pending_batches(
                    wh, open_providers(), refetch=refetch, now=now, run_id=run_id,
                    batch_ids=batch_ids, limit=PAGE_BATCHES)
                if not todo and not inflight:
                    break
                for t in todo:
                    # the budget is checked before each batch but the first: every run
                    # settles at least one, so a backlog always shrinks
                    if deadline is not None and submitted and time.monotonic() > deadline:
                        out_of_time = True
                        break
                    if watch.stops(t.provider) or (limit is not None
                                                    and taken[t.provider] >= limit):
                        continue
                    taken[t.provider] += 1
                    submitted += 1
                    inflight.append(pool.submit(read_batch, wh, ctx, t.provider, t))
                    while len(inflight) >= window:
                        consume()
                        if lines >= GROUP_LINES or len(group) >= GROUP_BATCHES:
                            commit()
                while inflight:  # the page's last batches, then the page is committed
                    consume()
                for o in watch.drain():
                    record(o)
                commit()
                if out_of_time or not todo:
                    break
        finally:
            for f in inflight:
                f.cancel()
            for f in inflight:
                if not f.cancelled():
                    with contextlib.suppress(Exception):
                        f.result().remove()
            for o in group:  # after a failure: staged parts that will not be loaded
                o.remove()
    backlog = pending_batch_counts(wh, providers, refetch=refetch, now=now, run_id=run_id,
                                   batch_ids=batch_ids) if (out_of_time or watch.missing or
                                                            watch.stopped) else {}
    for provider, r in results.items():
        r.results_backlog = backlog.get(provider, 0)
        finding = watch.missing or watch.stopped.get(provider)
        if finding:
            r.warnings.append(finding)
        if r.results_backlog and out_of_time:
            r.warnings.append(f"results budget of {budget:g} s spent: {r.results_backlog} "
                              "finished batches wait for a later run (batchlake results "
                              "reads them now)")
        if r.results_failed:
            r.warnings.append(f"{r.results_failed} finished batches' results could not be "
                              "read (see batch_results_state)")
