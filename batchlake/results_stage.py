"""The results stage: every request of every finished batch, with its cost.

As each provider's batch stage ends with its batches committed (``ProviderFeed``), its
finished batches whose results are not stored yet (warehouse/results_store.py decides which)
join the reading: from ``GET /v1/batches/{id}/results``, newest finished first across the
providers joined, as many at once as the gateway client's adaptive window lets in
(gateway/limiter.py: it follows how fast and how cleanly the gateway answers), within the
run's results budget, counted from the first provider's join. Slower providers may still be
listing meanwhile. Each body is read by batchlake/results_reader.py (streamed into
flattened parts staged as Parquet, what the readers hold unstaged bounded in bytes across
the window); groups of batches are then loaded, priced in SQL, in one transaction each.
Faults are per batch: a transient one (5xx, 429, a reset, a body that breaks off) is
retried on a later run with backoff; a batch with no output (404 gone, 403, 400) is
recorded as unavailable with the reason.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from batchlake.gateway import Slot
from batchlake.results_reader import HeldBytes, read_batch
from batchlake.results_route import RouteWatch
from batchlake.run import ProviderFeed, ProviderResult, RunContext, now_utc
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

# A load transaction commits once its batches hold this many lines (small batches' lines wait
# in memory until then: ~25 MB at this size)
GROUP_LINES = 100_000
GROUP_BATCHES = 500  # … or this many batches (small batches: one transaction, not 500)
PAGE_BATCHES = 2_000  # pending batches read from the database at a time
RELEASE_ROWS = 50_000  # rows (lines and states) written between re-attaches of the file


def run_results_stage(ctx: RunContext, feed: ProviderFeed, joined: dict[str, ProviderResult],
                      *, batch_ids: list[str] | None = None, refetch: bool = False,
                      budget_s: float | None = None,
                      on_progress: Callable[[int, int], None] | None = None) -> None:
    """Read and load the results of the finished batches of the providers ``feed`` hands
    over (those whose sync went well join, into ``joined``), newest finished first, until
    ``budget_s`` seconds have passed since the first joined (default: settings'; 0: no
    limit); what is left is the backlog, counted in each ``ProviderResult``. Returns once
    every provider has ended and nothing is left to read. ``on_progress(done, total)`` after
    each batch. See the module."""
    wh = ctx.warehouse
    if not isinstance(wh, Warehouse):
        return  # a remote worker: the flow process reads results after loading batches
    drain = _Drain(ctx, wh, feed, joined, batch_ids=batch_ids, refetch=refetch,
                   on_progress=on_progress)
    if not drain.join(wait=True):
        return  # no provider synced well: nothing to read
    budget = ctx.settings.results_budget_s if budget_s is None else budget_s
    wh.release_merged()  # the batch stage's row groups, before results need the memory cap
    with drain.cap:  # the stack _db() may already hold the raised cap in
        drain.run(time.monotonic() + budget if budget > 0 else None)
        drain.report(budget)


class _Drain:
    """One run of the results stage: the providers joined, the batches asked and not yet
    committed, the load group, and the stage's own start (one request at a time until an
    answer says the route is there; see RouteWatch)."""

    def __init__(self, ctx: RunContext, wh: Warehouse, feed: ProviderFeed,
                 joined: dict[str, ProviderResult], *, batch_ids: list[str] | None,
                 refetch: bool, on_progress: Callable[[int, int], None] | None) -> None:
        self.ctx, self.wh, self.feed, self.joined = ctx, wh, feed, joined
        self.batch_ids, self.refetch, self.on_progress = batch_ids, refetch, on_progress
        self.watch = RouteWatch(ctx)
        self.held = HeldBytes()
        self.taken: dict[str, int] = {}
        self.todo: deque[PendingBatch] = deque()
        self.exhausted = False  # the last page held every pending batch of those joined
        self.asked: set[tuple[str, str]] = set()  # asked, not committed: not asked again
        self.running: dict[Future[BatchOutcome], Slot] = {}
        self.group: list[BatchOutcome] = []
        self.lines = self.done = self.submitted = self.total = 0
        self.window = 1  # doubles per answer that is no suspect of a missing route
        self.out_of_time = False
        self.cap = contextlib.ExitStack()  # holds DuckDB's raised cap once every provider ended
        self.cap_raised = False

    @contextlib.contextmanager
    def _db(self) -> Iterator[None]:
        """DuckDB's cap for the stage's statements: raised to RESULTS_MEMORY_LIMIT (the
        settled batches' key index and the pending query need it) for the rest of the stage
        once every provider has ended; before that, for each statement alone, the write
        lock held, so the batch merges of providers still listing keep the sync's cap (raised
        for the whole overlap, it cost 22 MB of peak RSS in a first sync of 100,000)."""
        if not self.cap_raised and self.feed.complete:
            self.cap.enter_context(self.wh.memory_cap(RESULTS_MEMORY_LIMIT))
            self.cap_raised = True
        if self.cap_raised:
            yield
            return
        with self.wh.lock, self.wh.memory_cap(RESULTS_MEMORY_LIMIT):
            yield

    # -- providers joining ----------------------------------------------------------------
    def join(self, *, wait: bool) -> bool:
        """Take the providers that ended since the last call (``wait``: wait for one, unless
        all have); True when one that synced well joined."""
        ctx, wh = self.ctx, self.wh
        new = [r for r in self.feed.take(wait=wait) if r.status == "ok"]
        while wait and not new and not self.feed.complete:
            new = [r for r in self.feed.take(wait=True) if r.status == "ok"]
        if not new:
            return False
        # all joined first: a failure below fails each of them (the caller's record)
        for r in new:
            self.joined[r.provider] = r
            self.taken[r.provider] = 0
        providers = [r.provider for r in new]
        if not self.refetch:
            with self._db():
                settled = settle_past_retention(wh, providers, now=ctx.started_at,
                                                run_id=ctx.run_id, batch_ids=self.batch_ids)
            for r in new:
                if n := settled.get(r.provider, 0):
                    r.warnings.append(
                        f"{n} batches past {r.provider}'s "
                        f"{RESULTS_RETENTION_DAYS[r.provider]}-day results retention "
                        "settled as unavailable without a request")
        if self.on_progress:
            self.total += sum(self._pending_counts(providers).values())
        self.todo.clear()  # the next page, read now, puts their newest batches in their place
        self.exhausted = False
        return True

    def _pending_counts(self, providers: list[str]) -> dict[str, int]:
        ctx = self.ctx
        with self._db():
            return pending_batch_counts(self.wh, providers, refetch=self.refetch,
                                        now=ctx.started_at, run_id=ctx.run_id,
                                        batch_ids=self.batch_ids)

    def _open(self, provider: str) -> bool:
        """Whether ``provider``'s batches are still read: its route is there, its limit
        (--results-limit) not reached."""
        limit = self.ctx.settings.results_limit
        return not self.watch.stops(provider) and (limit is None or self.taken[provider] < limit)

    def _open_providers(self) -> list[str]:
        return [p for p in self.joined if self._open(p)]

    def _refill(self) -> None:
        """The next page of pending batches, less those asked and not yet committed."""
        ctx = self.ctx
        with self._db():
            page = pending_batches(self.wh, self._open_providers(), refetch=self.refetch,
                                   now=ctx.started_at, run_id=ctx.run_id,
                                   batch_ids=self.batch_ids, limit=PAGE_BATCHES)
        self.exhausted = len(page) < PAGE_BATCHES
        self.todo = deque(t for t in page if (t.provider, t.batch_id) not in self.asked)

    # -- the loop ---------------------------------------------------------------------------
    def run(self, deadline: float | None) -> None:
        limit = self.ctx.client.limit
        with ThreadPoolExecutor(max_workers=limit.maximum, thread_name_prefix="results") as pool:
            try:
                while True:
                    self.join(wait=False)
                    self._collect()
                    if not self.todo and not self.exhausted and not self.out_of_time:
                        self._refill()
                    if self.todo and not self.out_of_time and len(self.running) < self.window:
                        self._submit(pool, deadline)
                    elif self.running:
                        wait(self.running, return_when=FIRST_COMPLETED)
                    else:
                        self._settle()  # nothing in flight: every outcome is committed
                        if not self.exhausted and not self.out_of_time:
                            continue  # the next page
                        if self.feed.complete and not self.join(wait=False):
                            break
                        self.join(wait=True)  # the next provider (its backlog is counted)
            finally:
                self._abandon()

    def _submit(self, pool: ThreadPoolExecutor, deadline: float | None) -> None:
        limit = self.ctx.client.limit
        # The budget is checked before each batch but the first: every run settles at
        # least one, so a backlog always shrinks.
        left = None if deadline is None or not self.submitted else deadline - time.monotonic()
        slot = None if left is not None and left <= 0 else limit.acquire(timeout=left)
        if slot is None:
            self.out_of_time = True
            return
        while self.todo:
            t = self.todo.popleft()
            if not self._open(t.provider):
                continue
            self.taken[t.provider] += 1
            self.submitted += 1
            self.asked.add((t.provider, t.batch_id))
            self.running[pool.submit(read_batch, self.wh, self.ctx, t.provider, t, slot,
                                     self.held)] = slot
            return
        slot.release()

    def _collect(self) -> None:
        """Record the batches whose reading ended; commit once the group is full."""
        for f in [f for f in self.running if f.done()]:
            del self.running[f]
            try:
                outcome = f.result()
            except BaseException:  # a reader crashed: the batches read whole are kept
                with contextlib.suppress(Exception):
                    self._commit()
                raise
            if not (outcome.route_suspect or outcome.same_suspect):
                self.window = min(self.ctx.client.limit.maximum, self.window * 2)
            for o in self.watch.take(outcome):
                self._record(o)
            self.done += 1
            if self.on_progress:
                self.on_progress(self.done, self.total)
            if self.lines >= GROUP_LINES or len(self.group) >= GROUP_BATCHES:
                self._commit()  # before the next outcome, which may be a crash's

    def _record(self, o: BatchOutcome) -> None:
        r = self.joined[o.provider]
        if o.state == "loaded":
            r.results_batches += 1
            r.result_lines += o.lines
            if o.error:
                r.warnings.append(f"results of {o.batch_id}: {o.error}")
        else:
            r.results_failed += 1
        self.group.append(o)
        self.lines += o.lines

    def _commit(self) -> None:
        wh = self.wh
        if self.group:
            with self._db():
                load_results_group(wh, self.group, run_id=self.ctx.run_id, at=now_utc(),
                                   prices=self.ctx.prices)
                # DuckDB keeps every written row group's state until the file is
                # re-attached: a drain of 24,000 batches (120,000 lines) ran out of the 32MB
                # cap without this
                wh.wrote(self.lines + len(self.group))
                wh.release_merged(RELEASE_ROWS)
            self.asked.difference_update((o.provider, o.batch_id) for o in self.group)
        self.group, self.lines = [], 0

    def _settle(self) -> None:
        """Nothing in flight: suspects that never made a pattern were real, and the group
        commits."""
        for o in self.watch.drain():
            self._record(o)
        self._commit()

    def _abandon(self) -> None:
        """On the way out (after a failure, too): batches not started give their slots back,
        staged parts that will not be loaded go."""
        for f, slot in self.running.items():
            if f.cancel():
                slot.release()
        for f in self.running:
            if not f.cancelled():
                with contextlib.suppress(Exception):
                    f.result().remove()
        for o in self.group:
            o.remove()

    def report(self, budget: float) -> None:
        """Each provider's backlog and warnings."""
        watch = self.watch
        backlog = (self._pending_counts(list(self.joined))
                   if self.out_of_time or watch.missing or watch.stopped else {})
        for provider, r in self.joined.items():
            r.results_backlog = backlog.get(provider, 0)
            finding = watch.missing or watch.stopped.get(provider)
            if finding:
                r.warnings.append(finding)
            if r.results_backlog and self.out_of_time:
                r.warnings.append(f"results budget of {budget:g} s spent: "
                                  f"{r.results_backlog} finished batches wait for a later run "
                                  "(batchlake results reads them now)")
            if r.results_failed:
                r.warnings.append(f"{r.results_failed} finished batches' results could not "
                                  "be read (see batch_results_state)")
