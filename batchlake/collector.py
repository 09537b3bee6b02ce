"""``FrameCollector``: the ``Sink`` a remote (Dask) worker syncs into. A worker cannot write
the DuckDB file, so it keeps the flattened frames in memory; the flow process replays them
into the warehouse (``replay``), as a local sync would have loaded them."""

from __future__ import annotations

from concurrent.futures import Future
from datetime import datetime
from typing import Any

from batchlake.run import ProviderResult, now_utc, record_finish
from batchlake.transforms import FlatFrames
from batchlake.warehouse import ChunkCounts, Warehouse


class FrameCollector:
    """A ``Sink`` (batchlake/run.py) that keeps frames in memory."""

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
            wh.advance_watermark(result.provider, self.newest, run_id, now_utc())
        result.counts = counts
        record_finish(wh, run_id, result)
