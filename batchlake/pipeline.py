"""The sync as plain functions: gateway -> transforms -> warehouse, streamed in chunks.

The Prefect flow (``flows/``) and the CLI's direct mode both call these; nothing here knows
about Prefect. Per provider: list newest-first down to the watermark (pages prefetched on a
thread while the previous chunk is flattened and loaded), then follow known open batches the
listing no longer shows by id, then advance the watermark.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import uuid
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from batchlake.common.errors import (
    BatchlakeError,
    GatewayBadResponse,
    GatewayError,
    GatewayNotFound,
)
from batchlake.common.runtime import sync_runtime
from batchlake.common.settings import Settings
from batchlake.gateway import GatewayClient, ListingReport
from batchlake.planner import OpenBatch, Plan, plan_requests
from batchlake.results import PriceCache, load_prices, sync_results
from batchlake.transforms import FlatFrames, flatten_objects
from batchlake.transforms.redact import scrub_text
from batchlake.transforms.typed import flatten_records, record_ids
from batchlake.warehouse import ChunkCounts, Warehouse

T = TypeVar("T")
log = logging.getLogger("batchlake")
OnProgress = Callable[[str, int, int], None]  # (provider, pages read, objects fetched)


@dataclass
class ProviderResult:
    provider: str
    status: str = "running"  # ok | failed
    mode: str = "incremental"
    pages: int = 0
    fetched: int = 0
    refetched: int = 0
    counts: ChunkCounts = field(default_factory=ChunkCounts)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    watermark_used: datetime | None = None
    results_batches: int = 0  # finished batches whose results were loaded this run
    result_lines: int = 0
    results_failed: int = 0
    deferred: int = 0  # open batches backed off this run (batchlake/planner.py)
    plan: str = ""

    def as_row(self) -> dict[str, Any]:
        return {"provider": self.provider, "status": self.status, "mode": self.mode,
                "pages": self.pages, "fetched": self.fetched, "refetched_by_id": self.refetched,
                "inserted": self.counts.inserted, "updated": self.counts.updated,
                "unchanged": self.counts.unchanged, "rejected": self.counts.rejected,
                "snapshots": self.counts.snapshots, "results_batches": self.results_batches,
                "result_lines": self.result_lines, "results_failed": self.results_failed,
                "deferred": self.deferred, "plan": self.plan,
                "error": self.error or "", "warnings": "; ".join(self.warnings)}


@dataclass
class SyncReport:
    run_id: str
    started_at: datetime
    results: list[ProviderResult]
    published: str | None = None  # the snapshot written after the last commit, if asked

    @property
    def failed(self) -> list[ProviderResult]:
        return [r for r in self.results if r.status != "ok"]

    @property
    def all_failed(self) -> bool:
        return bool(self.results) and len(self.failed) == len(self.results)


class Sink(Protocol):
    """Where a provider's sync puts its results: the DuckDB ``Warehouse``, or a
    ``FrameCollector`` on a remote worker that hands frames back to the flow."""

    def watermark(self, provider: str) -> datetime | None: ...
    def start_run(self, run_id: str, provider: str, mode: str, started_at: datetime,
                  watermark: datetime | None) -> None: ...
    def finish_run(self, run_id: str, provider: str, *, status: str, finished_at: datetime,
                   pages: int, fetched: int, refetched: int, counts: ChunkCounts,
                   warnings: list[str], error: str | None, results_batches: int = 0,
                   result_lines: int = 0, results_failed: int = 0, deferred: int = 0,
                   plan: str = "") -> None: ...
    def stage_chunk(self, flat: FlatFrames) -> Any: ...
    def load_staged_async(self, staged: list[Any], *, run_id: str, observed_at: datetime,
                          now: bool = True) -> Future[ChunkCounts]: ...
    def merge_waiting_now(self) -> None: ...
    def add_rejects(self, rejects: list[dict[str, Any]], *, run_id: str, at: datetime
                    ) -> None: ...
    def open_batches(self, provider: str) -> list[tuple[Any, ...]]: ...
    def stored_since(self, provider: str, unix_s: int | None) -> int: ...
    def advance_watermark(self, provider: str, newest: datetime | None, run_id: str,
                          at: datetime) -> None: ...


class FrameCollector:
    """A ``Sink`` that keeps frames in memory (for Dask workers, which cannot write the
    DuckDB file): the flow replays them into the warehouse with ``replay``."""

    def __init__(self, watermark: datetime | None, open_batches: list[tuple[Any, ...]]
                 ) -> None:
        self._watermark = watermark
        self._open = open_batches
        self.frames: list[FlatFrames] = []
        self.rejects: list[dict[str, Any]] = []
        self.newest: datetime | None = None

    def watermark(self, provider: str) -> datetime | None:
        return self._watermark

    def start_run(self, *args: Any, **kwargs: Any) -> None:
        return None

    def finish_run(self, *args: Any, **kwargs: Any) -> None:
        return None

    def stage_chunk(self, flat: FlatFrames) -> FlatFrames:
        return flat  # kept in memory: the frames travel back to the flow

    def load_staged_async(self, staged: list[FlatFrames], *, run_id: str,
                          observed_at: datetime, now: bool = True) -> Future[ChunkCounts]:
        self.frames.extend(staged)
        done: Future[ChunkCounts] = Future()
        done.set_result(ChunkCounts(rejected=sum(len(f.rejects) for f in staged)))
        return done

    def merge_waiting_now(self) -> None:
        return None

    def add_rejects(self, rejects: list[dict[str, Any]], *, run_id: str, at: datetime) -> None:
        self.rejects.extend(rejects)

    def open_batches(self, provider: str) -> list[tuple[Any, ...]]:
        return self._open

    def stored_since(self, provider: str, unix_s: int | None) -> int:
        # A remote worker has no database to count what a deeper listing would pass: taken
        # as unbounded, so the plan follows the open batches by id, as before the planner.
        return 10**12

    def advance_watermark(self, provider: str, newest: datetime | None, run_id: str,
                          at: datetime) -> None:
        self.newest = newest

    def replay(self, wh: Warehouse, result: ProviderResult, *, run_id: str,
               observed_at: datetime) -> None:
        """Load what a remote worker collected, as ``sync_provider`` would have."""
        wh.start_run(run_id, result.provider, result.mode, observed_at, result.watermark_used)
        counts = ChunkCounts()
        for flat in self.frames:
            counts.add(wh.load_chunk(flat, run_id=run_id, observed_at=observed_at))
        if self.rejects:
            wh.add_rejects(self.rejects, run_id=run_id, at=observed_at)
            counts.rejected += len(self.rejects)
        if self.newest is not None and result.status == "ok":
            wh.advance_watermark(result.provider, self.newest, run_id, datetime.now(UTC))
        result.counts = counts
        record_finish(wh, run_id, result)


@dataclass
class RunContext:
    """What every provider's sync in one run shares."""

    settings: Settings
    warehouse: Sink
    client: GatewayClient
    run_id: str
    started_at: datetime
    full_refresh: bool = False
    on_progress: OnProgress | None = None
    logger: logging.Logger | logging.LoggerAdapter[Any] = log
    prices: PriceCache = field(default=None)  # type: ignore[assignment]
    refetch_results: bool = False
    providers_at_once: int = 1  # syncs sharing the flattening budget (settings.flatten_size)
    # One provider flattens, stages and hands over a part at a time (see _Chunker.flush_part).
    flatten_turn: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.prices is None:
            self.prices = PriceCache(self.settings)


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]


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


def sync_provider(ctx: RunContext, provider: str, *, batch_ids: list[str] | None = None,
                  raise_errors: bool = False) -> ProviderResult:
    """Sync one provider; failures are recorded in sync_runs (and re-raised if asked)."""
    wh, settings = ctx.warehouse, ctx.settings
    mode = "ids" if batch_ids else ("full" if ctx.full_refresh else "incremental")
    watermark = None if mode != "incremental" else wh.watermark(provider)
    result = ProviderResult(provider, mode=mode, watermark_used=watermark)
    wh.start_run(ctx.run_id, provider, mode, ctx.started_at, watermark)
    chunker = _Chunker(ctx, provider, result)
    try:
        if batch_ids:
            _fetch_by_id(ctx, provider, batch_ids, chunker, result, strict=True)
        else:
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
        if settings.results:
            sync_results(ctx, provider, result, batch_ids=batch_ids,
                         refetch=ctx.refetch_results)
        result.status = "ok"
    except BatchlakeError as e:
        _drain_quietly(chunker)
        result.status, result.error = "failed", _one_line(str(e), settings)
    except Exception as e:  # unexpected: keep the other providers going, say what it was
        _drain_quietly(chunker)
        ctx.logger.debug("provider %s crashed", provider, exc_info=True)
        result.status = "failed"
        result.error = _one_line(f"{type(e).__name__}: {e}", settings)
    finally:
        record_finish(wh, ctx.run_id, result)
    level = logging.INFO if result.status == "ok" else logging.WARNING
    ctx.logger.log(level, "%s: %s %s", provider, result.status,
                   result.error or _summary(result))
    if result.status != "ok" and raise_errors:
        raise ProviderFailed(f"{provider}: {result.error}")
    return result


def record_finish(sink: Sink, run_id: str, r: ProviderResult) -> None:
    """Write a provider's outcome into its sync_runs row."""
    sink.finish_run(run_id, r.provider, status=r.status, finished_at=datetime.now(UTC),
                    pages=r.pages, fetched=r.fetched, refetched=r.refetched, counts=r.counts,
                    warnings=r.warnings, error=r.error, results_batches=r.results_batches,
                    result_lines=r.result_lines, results_failed=r.results_failed,
                    deferred=r.deferred, plan=r.plan)


def _drain_quietly(chunker: _Chunker) -> None:
    """After a failure: what was already flattened still commits (it is valid data)."""
    with contextlib.suppress(Exception):
        chunker.buffer.clear()
        chunker.drain()


class ProviderFailed(BatchlakeError):
    """A provider's sync failed (raised only when the caller wants retries, e.g. Prefect)."""


def _summary(r: ProviderResult) -> str:
    c = r.counts
    return (f"{r.fetched} fetched ({r.pages} pages, {r.refetched} by id): {c.inserted} new, "
            f"{c.updated} changed, {c.unchanged} unchanged, {c.rejected} rejected")


def _one_line(text: str, settings: Settings) -> str:
    return scrub_text(" ".join(text.split()), settings.auth.secrets())[:500]


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


def sync(
    settings: Settings,
    *,
    providers: tuple[str, ...] | None = None,
    batch_ids: list[str] | None = None,
    full_refresh: bool = False,
    on_progress: OnProgress | None = None,
    logger: logging.Logger | logging.LoggerAdapter[Any] = log,
    run_id: str | None = None,
    refetch_results: bool = False,
    clock: datetime | None = None,
) -> SyncReport:
    """Run one sync of ``providers`` (default: settings.providers) into settings.db_path.
    ``clock`` is the run's time (default: now): tests and benchmarks simulate a schedule."""
    provs = providers or settings.providers
    started = clock or datetime.now(UTC)
    rid = run_id or new_run_id()
    prices = PriceCache(settings)
    if settings.results:
        prices.check()  # a bad prices file is one line before any work is done
    with sync_runtime(), \
            Warehouse(settings.db_path, lock_timeout_s=settings.lock_timeout_s,
                      group_rows=settings.chunk_size) as wh, \
            GatewayClient(settings) as client:
        ctx = RunContext(settings, wh, client, rid, started, full_refresh, on_progress, logger,
                         prices, refetch_results, providers_at_once=len(provs))
        with ThreadPoolExecutor(max_workers=max(1, len(provs)),
                                thread_name_prefix="provider") as pool:
            results = list(pool.map(
                lambda p: sync_provider(ctx, p, batch_ids=batch_ids), provs))
        report = SyncReport(rid, started, results)
        report.published = publish_snapshot(wh, settings, report)
    return report


def sync_results_only(settings: Settings, *, refetch: bool = False,
                      logger: logging.Logger | logging.LoggerAdapter[Any] = log) -> SyncReport:
    """Read (and price) the results of the finished batches already stored, without listing
    batches: ``batchlake results``. Recorded in sync_runs with mode 'results'."""
    started = datetime.now(UTC)
    rid = new_run_id()
    prices = PriceCache(settings)
    prices.check()
    results: list[ProviderResult] = []
    with sync_runtime(), \
            Warehouse(settings.db_path, lock_timeout_s=settings.lock_timeout_s) as wh, \
            GatewayClient(settings) as client:
        ctx = RunContext(settings, wh, client, rid, started, logger=logger, prices=prices,
                         refetch_results=refetch)
        for provider in settings.providers:
            r = ProviderResult(provider, mode="results")
            wh.start_run(rid, provider, "results", started, None)
            try:
                sync_results(ctx, provider, r, refetch=refetch)
                r.status = "ok"
            except BatchlakeError as e:
                r.status, r.error = "failed", _one_line(str(e), settings)
            finally:
                record_finish(wh, rid, r)
            results.append(r)
    return SyncReport(rid, started, results)


def reprice_stored(settings: Settings) -> tuple[int, int]:
    """Recompute every stored line's cost from the prices in force (``batchlake reprice``):
    not a single request. Returns (lines, unpriced lines)."""
    from batchlake.warehouse.results import reprice

    prices = load_prices(settings)
    with Warehouse(settings.db_path, lock_timeout_s=settings.lock_timeout_s) as wh:
        return reprice(wh, prices)


def publish_snapshot(wh: Warehouse, settings: Settings, report: SyncReport) -> str | None:
    """Publish the read-only snapshot once every provider's chunks are committed. A run in
    which every provider failed changed nothing worth a new snapshot."""
    if not settings.publish_path or report.all_failed:
        return None
    return str(wh.publish(settings.publish_path, settings.publish_storage_version))


def now_utc() -> datetime:
    return datetime.now(UTC)
