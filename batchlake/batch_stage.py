"""The batch-object stage: list a provider's batches, follow the open ones by id, flatten
and merge them, and advance its watermark.

Per provider: list newest-first down to the watermark (pages prefetched on a thread while the
previous part is flattened and loaded), then follow the known open batches the listing no
longer shows by id (batchlake/planner.py decides which and how), then advance the watermark
once everything below it is committed. Nothing here knows about results or Prefect.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Generator, Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any, TypeVar

from batchlake.common import GatewayBadResponse, GatewayError, GatewayNotFound, Settings
from batchlake.gateway import ListingReport
from batchlake.planner import OpenBatch, Plan, plan_requests
from batchlake.run import ProviderResult, RunContext
from batchlake.transforms import flatten_objects, flatten_records, record_ids
from batchlake.warehouse import ChunkCounts

T = TypeVar("T")


def _prefetch(source: Iterator[T], depth: int, stop: threading.Event) -> Generator[T]:
    """Run ``source`` on a thread, ``depth`` items ahead, so I/O overlaps our CPU work."""
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)

    def pump() -> None:
        try:
            for item in source:
                while not stop.is_set():
                    try:
                        q.put(("item", item), timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", None))
        except BaseException as e:  # handed to the consumer, raised there
            q.put(("error", e))

    t = threading.Thread(target=pump, daemon=True, name="prefetch")
    t.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()


class _Chunker:
    """Collects objects, flattens them part by part and hands each part to the loader.

    Flattening (Python, holds the GIL) runs here, and so does staging each flattened part as
    Parquet (polars, in Rust), while earlier parts merge on the warehouse's loader thread
    (DuckDB, without the GIL): the two cores work at once. Each staged part goes to the
    loader at once; the loader merges every provider's waiting parts, up to ``chunk_size``
    objects in one transaction, once that many wait or someone is about to wait for one
    (merges of 15,000-20,000 rows cost DuckDB ~30% less per row than merges of 5,000,
    measured with ~1 KB objects). So no provider waits for a chunk of its own to fill. At
    most ``chunk_size`` objects of a provider wait unmerged: that bounds the staged files
    and the flattening's lead."""

    def __init__(self, ctx: RunContext, provider: str, result: ProviderResult) -> None:
        self.ctx, self.provider, self.result = ctx, provider, result
        self.buffer: list[Any] = []
        self.buffer_typed = False  # the buffer holds typed records (transforms/typed.py)
        self.newest: int | None = None
        self.pending: list[Future[ChunkCounts]] = []
        # Batches stored as open when the run began and not yet seen by it, newest first:
        # what the listing misses is followed by id. Held here (not read back from the
        # table after the loads) so the by-id fetch needs no wait for the merges, and only
        # open ids are kept, so memory does not grow with the sync.
        self.unseen_open: dict[str, None] = {}
        settings = ctx.settings
        # The providers syncing at once share the flattening budget: one provider alone
        # flattens big parts (fewer, cheaper steps), five at once smaller ones, so that
        # memory stays the same. At most half a transaction, so two parts can wait.
        share = settings.flatten_size // max(1, ctx.providers_at_once)
        self.part_size = max(1, min(share, settings.chunk_size // 2 or 1))
        self.max_pending = max(1, settings.chunk_size // self.part_size)  # parts unmerged

    def expect_open(self, open_ids: list[str]) -> None:
        self.unseen_open = dict.fromkeys(open_ids)

    def add(self, objects: list[Any], *, typed: bool = False) -> None:
        if typed != self.buffer_typed:  # one kind per part; order kept (later wins)
            self.flush_part()
            self.buffer_typed = typed
        self.buffer.extend(objects)
        if len(self.buffer) >= self.part_size:
            self.flush_part()

    def flush_part(self) -> None:
        """Flatten and stage what is buffered, and hand it to the loader.

        The providers of a run take turns here (``ctx.flatten_turn``), handing-over
        included: flattening holds the GIL, so five at once only traded it back and forth
        (every 0.2 ms, see short_gil_switches in common/runtime.py), and a provider waiting
        for its merges holds the others back too, which leaves the loader the CPU it is
        short of. Measured on
        100k wild objects over five providers: 6.8 -> 6.4 s of CPU, 4.6 -> 4.2 s wall. The
        loader never takes the turn, so waiting for it while holding the turn is safe."""
        if not self.buffer:
            return
        with self.ctx.flatten_turn:
            self._flush_part()

    def _flush_part(self) -> None:
        objs, self.buffer = self.buffer, []
        ctx = self.ctx
        flatten = flatten_records if self.buffer_typed else flatten_objects
        flat = flatten(objs, self.provider, as_of=ctx.started_at,
                       store_raw=ctx.settings.store_raw)
        if flat.newest_created_at is not None:
            self.newest = max(self.newest or 0, flat.newest_created_at)
        if self.unseen_open:
            for bid in flat.ids_among(self.unseen_open):
                del self.unseen_open[bid]
        if flat.duplicates:
            self.result.warnings.append(f"{flat.duplicates} duplicate ids in one chunk")
        self.submit(ctx.warehouse.stage_chunk(flat))

    def submit(self, staged: Any) -> None:
        wh = self.ctx.warehouse
        if len(self.pending) >= self.max_pending:
            wh.merge_waiting_now()  # about to wait for the oldest: do not let it wait
        while len(self.pending) >= self.max_pending:
            self.result.counts.add(self.pending.pop(0).result())
        # The loader may hold it back until a full group waits (every provider's parts).
        self.pending.append(wh.load_staged_async(
            [staged], run_id=self.ctx.run_id, observed_at=self.ctx.started_at, now=False))

    def stale_open(self) -> list[str]:
        """Open batches neither loaded nor buffered by this run. The buffer is not flushed
        first, so a short listing and its by-id follow-ups share one chunk (one merge)."""
        buffered = set(record_ids(self.buffer) if self.buffer_typed else
                       [o.get("id") for o in self.buffer if type(o) is dict])
        return [bid for bid in self.unseen_open if bid not in buffered]

    def drain(self) -> None:
        """Flush and wait until every part is committed (or raise its error)."""
        self.flush_part()
        self.ctx.warehouse.merge_waiting_now()
        try:
            while self.pending:
                self.result.counts.add(self.pending.pop(0).result())
        finally:
            for f in self.pending:  # after a failure: let the others finish, keep their counts
                with contextlib.suppress(Exception):
                    self.result.counts.add(f.result())
            self.pending.clear()


def run_batch_stage(ctx: RunContext, provider: str, result: ProviderResult, *,
                 batch_ids: list[str] | None = None) -> None:
    """Sync ``provider``'s batch objects into ``ctx.warehouse``: the ``batch_ids`` given
    (each must exist), or the listing and its planned follow-ups. Raises on a failure, after
    committing what was already flattened (it is valid data)."""
    wh = ctx.warehouse
    chunker = _Chunker(ctx, provider, result)
    try:
        if batch_ids:
            _fetch_by_id(ctx, provider, batch_ids, chunker, result, strict=True)
        else:
            watermark = result.watermark_used
            plan = _plan(ctx, provider, watermark)
            result.plan, result.deferred = plan.describe(), len(plan.deferred)
            chunker.expect_open(plan.follow)
            finished = _list(ctx, provider, watermark, chunker, result, plan)
            stale = chunker.stale_open()
            if stale:
                _fetch_by_id(ctx, provider, stale, chunker, result, strict=False)
                result.refetched = len(stale)
            chunker.drain()  # the watermark moves only once everything below it is committed
            if finished and chunker.newest is not None:
                wh.advance_watermark(provider, datetime.fromtimestamp(chunker.newest, UTC),
                                     ctx.run_id, datetime.now(UTC))
        chunker.drain()
    except BaseException:
        _drain_quietly(chunker)
        raise


def _drain_quietly(chunker: _Chunker) -> None:
    """After a failure: what was already flattened still commits (it is valid data)."""
    with contextlib.suppress(Exception):
        chunker.buffer.clear()
        chunker.drain()


def _window_cutoff(settings: Settings, provider: str, watermark: datetime | None
                   ) -> int | None:
    """The unix second an incremental listing stops at (None: list everything)."""
    if watermark is None or provider in settings.unordered_providers:
        return None
    return int(watermark.timestamp()) - settings.overlap_s


def _plan(ctx: RunContext, provider: str, watermark: datetime | None) -> Plan:
    wh, settings = ctx.warehouse, ctx.settings
    return plan_requests(
        [OpenBatch(*row) for row in wh.open_batches(provider)], now=ctx.started_at,
        cutoff=_window_cutoff(settings, provider, watermark), page_limit=settings.page_limit,
        poll_interval_s=settings.poll_interval_s, full_refresh=ctx.full_refresh,
        stored_since=lambda t: wh.stored_since(provider, t))


def _list(ctx: RunContext, provider: str, watermark: datetime | None, chunker: _Chunker,
          result: ProviderResult, plan: Plan) -> bool:
    """List newest-first; return True when the listing finished (end or watermark)."""
    cutoff = _window_cutoff(ctx.settings, provider, watermark)
    if plan.full_listing:
        cutoff = None
    elif cutoff is not None and plan.list_until is not None:
        cutoff = min(cutoff, plan.list_until)  # down to the oldest open batch to see again
    report = ListingReport()
    stop = threading.Event()
    pages = _prefetch(ctx.client.list_pages(provider, report=report, typed=True), 4, stop)
    reached_watermark = False
    try:
        for page in pages:
            result.pages = page.number
            result.fetched += len(page.objects)
            chunker.add(page.objects, typed=page.typed)
            if ctx.on_progress:
                ctx.on_progress(provider, result.pages, result.fetched)
            oldest = page.oldest_created()
            if cutoff is not None and oldest is not None and oldest < cutoff:
                reached_watermark = True
                break
    except GatewayBadResponse as e:
        chunker.drain()
        ctx.warehouse.add_rejects([{
            "provider": provider, "batch_id": None,
            "reason": f"page {report.pages + 1} unreadable: {e}",
            "payload": e.payload.decode("utf-8", "replace"),
        }], run_id=ctx.run_id, at=ctx.started_at)
        result.counts.rejected += 1
        raise
    finally:
        stop.set()
        pages.close()
    if report.duplicate_ids:
        result.warnings.append(f"{report.duplicate_ids} ids repeated across adjacent pages")
    result.warnings.extend(report.warnings)
    return reached_watermark or (report.complete and not report.warnings)


def _fetch_by_id(ctx: RunContext, provider: str, ids: list[str], chunker: _Chunker,
                 result: ProviderResult, *, strict: bool) -> None:
    gone = 0
    for bid, obj in ctx.client.retrieve_many(provider, ids):
        if isinstance(obj, GatewayError):
            if strict or not isinstance(obj, GatewayNotFound):
                if strict:
                    raise obj
                result.warnings.append(f"retrieve {bid}: {obj}")
            else:
                gone += 1
            continue
        result.fetched += 1
        chunker.add([obj])
        if ctx.on_progress:
            ctx.on_progress(provider, result.pages, result.fetched)
    if gone:
        result.warnings.append(f"{gone} open batches no longer found by id")
