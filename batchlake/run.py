"""A sync run's shared types: what every stage reads (``RunContext``) and reports
(``ProviderResult``, ``SyncReport``), and the ``Sink`` the batch stage writes to.

The bottom of batchlake's own modules: it imports the layers (common, gateway, warehouse)
and ``batchlake.pricing``, and no stage. The stages (``batchlake.batch_stage``,
``batchlake.results_stage``), the orchestration (``batchlake.pipeline``) and the flows import it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from batchlake.common import BatchlakeError, Settings
from batchlake.gateway import GatewayClient
from batchlake.pricing import PriceCache
from batchlake.transforms import FlatFrames, scrub_text
from batchlake.warehouse import ChunkCounts

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
    results_backlog: int = 0  # finished batches left for a later run (budget, missing route)
    deferred: int = 0  # open batches backed off this run (batchlake/planner.py)
    plan: str = ""
    seconds: float = 0.0  # from the provider's start to its last recorded finish
    started: float = field(default_factory=time.monotonic, repr=False, compare=False)

    def as_row(self) -> dict[str, Any]:
        return {"provider": self.provider, "status": self.status, "mode": self.mode,
                "pages": self.pages, "fetched": self.fetched, "refetched_by_id": self.refetched,
                "inserted": self.counts.inserted, "updated": self.counts.updated,
                "unchanged": self.counts.unchanged, "rejected": self.counts.rejected,
                "snapshots": self.counts.snapshots, "results_batches": self.results_batches,
                "result_lines": self.result_lines, "results_failed": self.results_failed,
                "results_backlog": self.results_backlog, "deferred": self.deferred,
                "plan": self.plan, "seconds": round(self.seconds, 2),
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

    def as_json(self, seconds: float | None = None) -> dict[str, Any]:
        """Every figure of the run (``batchlake sync --format json``): the run, and per
        provider each count, the plan, the error and the warnings (a list)."""
        return {"run_id": self.run_id, "started_at": self.started_at.isoformat(),
                "seconds": None if seconds is None else round(seconds, 2),
                "published": self.published,
                "providers": [{**r.as_row(), "warnings": list(r.warnings)}
                              for r in self.results]}


class Sink(Protocol):
    """Where a provider's sync puts its results: the DuckDB ``Warehouse``, or a
    ``FrameCollector`` (batchlake/collector.py) on a remote worker that hands frames back to
    the flow."""

    def watermark(self, provider: str) -> datetime | None: ...
    def start_run(self, run_id: str, provider: str, mode: str, started_at: datetime,
                  watermark: datetime | None) -> None: ...
    def finish_run(self, run_id: str, provider: str, *, status: str, finished_at: datetime,
                   pages: int, fetched: int, refetched: int, counts: ChunkCounts,
                   warnings: list[str], error: str | None, results_batches: int = 0,
                   result_lines: int = 0, results_failed: int = 0, deferred: int = 0,
                   plan: str = "", results_backlog: int = 0) -> None: ...
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
    # One provider flattens, stages and hands over a part at a time (batchlake/batch_stage.py).
    flatten_turn: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.prices is None:
            self.prices = PriceCache(self.settings)


class ProviderFeed:
    """The providers whose batch stage has ended (well or not), handed over in the order
    they end: the results stage reads the results of a provider whose batches are committed
    while slower providers still list."""

    def __init__(self, expected: int) -> None:
        self._cond = threading.Condition()
        self._ready: list[ProviderResult] = []
        self._expected = expected
        self._ended = 0

    @classmethod
    def of(cls, results: list[ProviderResult]) -> ProviderFeed:
        """A feed whose providers have all ended already."""
        feed = cls(len(results))
        for r in results:
            feed.add(r)
        return feed

    def add(self, result: ProviderResult) -> None:
        """``result``'s provider has ended; its batches are committed."""
        with self._cond:
            self._ready.append(result)
            self._ended += 1
            self._cond.notify_all()

    def take(self, *, wait: bool = False) -> list[ProviderResult]:
        """The providers that ended since the last take; ``wait``: wait for one, unless
        every provider has ended."""
        with self._cond:
            if wait:
                self._cond.wait_for(lambda: bool(self._ready) or self._ended >= self._expected)
            ready, self._ready = self._ready, []
            return ready

    @property
    def complete(self) -> bool:
        """Every provider has ended (some may not have been taken yet)."""
        return self._ended >= self._expected


class ProviderFailed(BatchlakeError):
    """A provider's sync failed (raised only when the caller wants retries, e.g. Prefect)."""


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]


def now_utc() -> datetime:
    return datetime.now(UTC)


def record_finish(sink: Sink, run_id: str, r: ProviderResult) -> None:
    """Write a provider's outcome into its sync_runs row."""
    r.seconds = time.monotonic() - r.started
    sink.finish_run(run_id, r.provider, status=r.status, finished_at=now_utc(),
                    pages=r.pages, fetched=r.fetched, refetched=r.refetched, counts=r.counts,
                    warnings=r.warnings, error=r.error, results_batches=r.results_batches,
                    result_lines=r.result_lines, results_failed=r.results_failed,
                    deferred=r.deferred, plan=r.plan, results_backlog=r.results_backlog)


def one_line(text: str, settings: Settings) -> str:
    """An error as one line of at most 500 characters, secrets scrubbed."""
    return scrub_text(" ".join(text.split()), settings.auth.secrets())[:500]
