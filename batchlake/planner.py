"""Request economy: which open batches a run reads again, and how (pure, no I/O).

Every request to Bifrost becomes one to a provider's batch API, rate-limited and slow, so a
re-sync must never ask more than a full sync would. Per provider and run:

1. **Backoff.** An open batch is re-read every run while it is inside its completion window.
   Past its deadline (or, without one, a day after it last changed) it is re-read less and
   less often: every 2, then 5, then 15 schedule intervals (``poll_interval_s``, the cron's
   10 minutes by default) once it is 0, 1 and 6 hours late. A batch not due is *deferred*:
   not asked this run; ``stuck`` and the overdue views still show it. A full refresh (the
   daily reconcile) reads everything.
2. **Plan.** The due open batches the listing window will not show (created before
   watermark − overlap, or with no ``created_at``, which counts as the oldest) are either
   followed by id, one request each, or reached by listing further down, to the oldest of
   them: one page per ``page_limit`` batches stored that recently. The cheaper is taken.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

# (hours late, then re-read every N schedule intervals)
BACKOFF_STEPS: tuple[tuple[float, int], ...] = ((0.0, 2), (1.0, 5), (6.0, 15))
NO_DEADLINE_GRACE = timedelta(hours=24)  # without a deadline: late a day after its last change


@dataclass(frozen=True)
class OpenBatch:
    """A stored open batch, as the planner sees it."""

    batch_id: str
    created_at: datetime | None
    deadline_at: datetime | None
    last_changed_at: datetime | None
    last_seen_at: datetime | None


@dataclass
class Plan:
    """What a provider's run will ask for."""

    name: str  # "window" | "window+by-id" | "list-to-oldest" | "full"
    follow: list[str] = field(default_factory=list)  # open batches to see again this run
    deferred: list[str] = field(default_factory=list)  # open batches backed off this run
    list_until: int | None = None  # unix seconds the listing must reach; None: see ``full``
    full_listing: bool = False  # list everything (no cutoff)
    by_id_estimate: int = 0
    listing_estimate: int = 0

    def describe(self) -> str:
        return (f"{self.name} (by id {self.by_id_estimate} vs listing {self.listing_estimate} "
                f"pages; {len(self.deferred)} deferred)")


def poll_every(batch: OpenBatch, now: datetime, poll_interval_s: float) -> float:
    """Seconds between reads of this open batch (0: every run)."""
    due = batch.deadline_at
    if due is None:
        if batch.last_changed_at is None:
            return 0.0
        due = batch.last_changed_at + NO_DEADLINE_GRACE
    late_h = (now - due).total_seconds() / 3600
    every = 0.0
    for after_h, intervals in BACKOFF_STEPS:
        if late_h >= after_h:
            every = intervals * poll_interval_s
    return every


def is_due(batch: OpenBatch, now: datetime, poll_interval_s: float) -> bool:
    every = poll_every(batch, now, poll_interval_s)
    if every == 0 or batch.last_seen_at is None:
        return True
    # half an interval of slack: a schedule's runs do not start to the second
    return (now - batch.last_seen_at).total_seconds() >= every - poll_interval_s / 2


def plan_requests(open_batches: list[OpenBatch], *, now: datetime, cutoff: int | None,
                  page_limit: int, poll_interval_s: float, full_refresh: bool,
                  stored_since: Callable[[int | None], int]) -> Plan:
    """Plan a provider's run. ``cutoff``: the unix second the listing stops at (None: a full
    listing anyway). ``stored_since(t)``: how many batches are stored created at ``t`` or
    later (None: all of them), i.e. how many the listing passes on its way down to ``t``."""
    if full_refresh:
        return Plan("full", follow=[b.batch_id for b in open_batches], full_listing=True)
    due = [b for b in open_batches if is_due(b, now, poll_interval_s)]
    deferred = [b.batch_id for b in open_batches if not is_due(b, now, poll_interval_s)]
    if cutoff is None:
        return Plan("full", follow=[b.batch_id for b in due], deferred=deferred,
                    full_listing=True)
    outside = [b for b in due if b.created_at is None or b.created_at.timestamp() < cutoff]
    follow = [b.batch_id for b in due]
    if not outside:
        return Plan("window", follow=follow, deferred=deferred)
    oldest = None if any(b.created_at is None for b in outside) else \
        min(int(b.created_at.timestamp()) for b in outside if b.created_at is not None)
    by_id = len(outside)
    pages = math.ceil((stored_since(oldest) + 1) / max(1, page_limit))
    window_pages = math.ceil((stored_since(cutoff) + 1) / max(1, page_limit))
    extra_pages = max(0, pages - window_pages)
    if extra_pages < by_id:
        return Plan("list-to-oldest" if oldest is not None else "full", follow=follow,
                    deferred=deferred, list_until=oldest, full_listing=oldest is None,
                    by_id_estimate=by_id, listing_estimate=extra_pages)
    return Plan("window+by-id", follow=follow, deferred=deferred, by_id_estimate=by_id,
                listing_estimate=extra_pages)
