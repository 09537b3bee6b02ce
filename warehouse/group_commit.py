"""Group commit: one loader thread merges staged parts while the callers flatten the next.

Loads wait in one queue, shared by every provider's sync, and the loader takes what waits (up
to ``group_rows`` objects) into one transaction once a group's worth waits or a caller is
about to wait on a load; while it merges, the next group fills.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import duckdb

from batchlake.common import DatabaseError
from batchlake.warehouse.merge_plan import ChunkCounts
from batchlake.warehouse.staged_parts import StagedChunk

# Merges staged parts in one transaction: (parts, run_id, observed_at) -> changes per provider.
MergeParts = Callable[[list[StagedChunk], str, datetime], dict[str, ChunkCounts]]


@dataclass
class _Load:
    """A load waiting for the loader thread."""

    staged: list[StagedChunk]
    run_id: str
    observed_at: datetime
    future: Future[ChunkCounts]

    @property
    def rows(self) -> int:
        return sum(c.batches for c in self.staged)

    @property
    def providers(self) -> set[str]:
        return {p for c in self.staged for p in c.providers}


class GroupCommit:
    """The loader thread and the loads waiting for it. ``merge`` runs a group's transaction;
    ``before_merge`` runs first, on the loader thread (the file's re-attach, when due)."""

    def __init__(self, merge: MergeParts, before_merge: Callable[[], None], *,
                 group_rows: int) -> None:
        self._merge = merge
        self._before_merge = before_merge
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="duckdb-loader")
        self._waiting: collections.deque[_Load] = collections.deque()
        self._waiting_changed = threading.Condition()
        self._waiting_rows = 0
        self._urgent = False  # merge what waits now, even less than a group
        self.group_rows = group_rows
        # The loader idles until the first group waits, and it is the sync's slowest stage:
        # the first merge takes half a group, so it starts sooner (docs/scaling.md).
        self._group_threshold = max(1, group_rows // 2)
        # Staged parts wait as files until merged: at most two transactions' worth.
        self.max_waiting_rows = 2 * group_rows

    def submit(self, staged: list[StagedChunk], *, run_id: str, observed_at: datetime,
               now: bool = True) -> Future[ChunkCounts]:
        """Queue a load for the loader thread (``Warehouse.load_staged_async``)."""
        load = _Load(staged, run_id, observed_at, Future())
        with self._waiting_changed:
            # Past the bound on what waits unmerged, the caller waits its turn.
            while self._waiting and self._waiting_rows + load.rows > self.max_waiting_rows:
                self._waiting_changed.wait()
            self._waiting.append(load)
            self._waiting_rows += load.rows
            if now:
                self._urgent = True
        self._loader.submit(self._merge_waiting)
        return load.future

    def merge_now(self) -> None:
        """Merge what waits without waiting for a full group (the caller is about to wait
        for one of those loads)."""
        with self._waiting_changed:
            if not self._waiting:
                return
            self._urgent = True
        self._loader.submit(self._merge_waiting)

    def close(self) -> None:
        """Merge whatever was handed over, and stop the loader thread once it has."""
        self.merge_now()
        self._loader.shutdown(wait=True)

    def _take_group(self) -> list[_Load]:
        """The loads waiting, oldest first, up to group_rows (at least one); none while
        fewer wait and nobody asked for them."""
        with self._waiting_changed:
            if self._waiting_rows < self._group_threshold and not self._urgent:
                return []
            self._group_threshold = self.group_rows
            group: list[_Load] = []
            rows = 0
            while self._waiting:
                nxt = self._waiting[0]
                if group and ((nxt.run_id, nxt.observed_at) !=
                              (group[0].run_id, group[0].observed_at)
                              or rows + nxt.rows > self.group_rows):
                    break
                group.append(self._waiting.popleft())
                rows += nxt.rows
            self._waiting_rows -= rows
            self._urgent = self._urgent and bool(self._waiting)
            self._waiting_changed.notify_all()
            return group

    def _merge_waiting(self) -> None:
        group = self._take_group()
        if not group:
            return  # taken into an earlier turn's group, or waiting for more
        try:
            try:
                self._before_merge()
            except BaseException as e:  # the file, not a load: no load is tried on its own
                for load in group:
                    load.future.set_exception(e)
                return
            self._merge_group(group)
        except BaseException as e:
            if len(group) == 1 or not isinstance(e, DatabaseError | duckdb.Error):
                for load in group:
                    load.future.set_exception(e)
                return
            # One provider's part (or the group's size) failed the transaction: each load
            # is tried on its own, so the others still land and the culprit keeps its error.
            for load in group:
                try:
                    self._merge_group([load])
                except BaseException as one:
                    load.future.set_exception(one)
        finally:
            for load in group:
                for chunk in load.staged:
                    chunk.remove()

    def _merge_group(self, group: list[_Load]) -> None:
        """One transaction for the group; each load's future gets its providers' changes
        (the first load of a provider carries them) and its own rejects."""
        by_provider = self._merge([c for load in group for c in load.staged],
                                  group[0].run_id, group[0].observed_at)
        for load in group:
            counts = ChunkCounts(rejected=sum(len(c.rejects) for c in load.staged))
            for provider in load.providers & by_provider.keys():
                counts.add(by_provider.pop(provider))
            load.future.set_result(counts)
