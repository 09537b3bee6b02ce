"""The sync's connection to batchlake's DuckDB file, ``Warehouse``: what the stages call.

Flattened chunks are staged as Parquet (staged_parts.py) and merged set-based, one
transaction per load group (merge_plan.py), on one loader thread (group_commit.py). A
transaction's batches, children, snapshots and rejects commit together, so a crash leaves the
last committed state; a re-run converges because every statement is an idempotent merge. The
run's records are run_bookkeeping.py's; DuckDB's errors read as one line (duckdb_errors.py).
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from batchlake.common import DatabaseError
from batchlake.transforms import REJECTS, FlatFrames
from batchlake.warehouse import publish as _publish
from batchlake.warehouse import run_bookkeeping as runs
from batchlake.warehouse.db import (
    REATTACH_ROWS,
    SYNC_ROW_GROUP_SIZE,
    SyncFileMemory,
    checkpoint_headroom,
    checkpoint_memory_limit,
    connect,
    is_local_file,
    migrate,
    query_frame,
    quote_name,
    set_memory_limit,
    tune_for_sync,
)
from batchlake.warehouse.duckdb_errors import oom_is_a_setting
from batchlake.warehouse.group_commit import GroupCommit
from batchlake.warehouse.merge_plan import ChunkCounts, merge_incoming
from batchlake.warehouse.staged_parts import StagedChunk, read_as_incoming, write_chunk


class ArrowStream:
    """A polars frame as an Arrow C stream (PyCapsule): DuckDB scans it without pyarrow,
    which saves the import and a copy. A fresh stream per request, since DuckDB may ask
    more than once (schema, then scan). Used for rejects; chunks are staged as Parquet."""

    def __init__(self, df: pl.DataFrame) -> None:
        self.df = df

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        return self.df.__arrow_c_stream__(requested_schema)


class Warehouse:
    """batchlake's DuckDB file. Thread-safe: writes are serialised by one lock, so fetch
    threads of several providers can share it."""

    @oom_is_a_setting
    def __init__(self, db_path: str, *, lock_timeout_s: float = 30.0,
                 group_rows: int = 15_000) -> None:
        self.db_path = db_path
        self.lock_timeout_s = lock_timeout_s
        self.con = connect(db_path, lock_timeout_s=lock_timeout_s,
                           row_group_size=SYNC_ROW_GROUP_SIZE)
        try:
            tune_for_sync(self.con)
            self.version = migrate(self.con)
            # Staged parts live only until their transaction commits; the folder goes at
            # close (after a crash, the system's temp cleaning takes it).
            self._stage_dir = tempfile.mkdtemp(prefix="batchlake-stage-")
        except OSError as e:
            self.con.close()
            raise DatabaseError(f"cannot create a staging folder in {tempfile.gettempdir()} "
                                f"({e.strerror}); set TMPDIR to a writable folder") from None
        except BaseException:
            self.con.close()  # a bad setting or a failed migration: release the file now
            raise
        self._parts = itertools.count()
        self.lock = threading.RLock()
        self._memory = SyncFileMemory(self.con, db_path, lock=self.lock,
                                      lock_timeout_s=lock_timeout_s)
        # A merge first re-attaches the file once this many batches were merged since it
        # was attached (db.REATTACH_ROWS; 0: never, a file that is not attached).
        self.reattach_rows = REATTACH_ROWS if is_local_file(db_path) else 0
        # One loader thread: merges run while the callers flatten the next parts.
        self._loader = GroupCommit(self._merge_for_loader, self._reattach_if_due,
                                   group_rows=group_rows)

    @oom_is_a_setting
    def close(self) -> None:
        self._loader.close()  # whatever was handed over is merged, as it always was
        # Closing checkpoints what the WAL holds: give it the commits' headroom. Suppressed:
        # a database already invalidated raised its error where that happened.
        with contextlib.suppress(duckdb.FatalException):
            set_memory_limit(self.con, checkpoint_memory_limit())
        shutil.rmtree(self._stage_dir, ignore_errors=True)
        self.con.close()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- staging and the loader --------------------------------------------------------------
    def stage_path(self, name: str) -> str:
        """A fresh path in the staging folder (removed at close, whatever is left)."""
        return str(Path(self._stage_dir) / f"{name}-{next(self._parts):06d}.parquet")

    def stage_chunk(self, flat: FlatFrames) -> StagedChunk:
        """Write a flattened chunk to Parquet (on the calling thread) for a later
        ``load_staged_async``; its frames can then be dropped. Parts are numbered in order:
        a later part wins over an earlier one for the same batch."""
        return write_chunk(flat, self._stage_dir, next(self._parts))

    def load_staged_async(self, staged: list[StagedChunk], *, run_id: str,
                          observed_at: datetime, now: bool = True) -> Future[ChunkCounts]:
        """Merge staged chunks on the loader thread, in one transaction with whatever else
        waits there (other providers' chunks included). The future's counts are this
        provider's changes in that transaction; when several of one provider's loads share
        it, the first carries them and the others count only their rejects.

        ``now=False``: the load may wait until group_rows objects wait in all (merges of
        15,000 rows cost DuckDB less per row than merges of 2,000) or until someone calls
        ``merge_waiting_now`` — as a sync does before it waits on a future."""
        return self._loader.submit(staged, run_id=run_id, observed_at=observed_at, now=now)

    def merge_waiting_now(self) -> None:
        """Merge what waits without waiting for a full group (the caller is about to wait
        for one of those loads)."""
        self._loader.merge_now()

    def _merge_for_loader(self, staged: list[StagedChunk], run_id: str,
                          observed_at: datetime) -> dict[str, ChunkCounts]:
        """A group's transaction on the loader thread, its batches counted towards the next
        re-attach."""
        by_provider = self._load_parts(staged, run_id=run_id, observed_at=observed_at)
        self._memory.wrote(sum(chunk.batches for chunk in staged))
        return by_provider

    # -- memory ------------------------------------------------------------------------------
    def memory_cap(self, size: str) -> contextlib.AbstractContextManager[None]:
        """DuckDB's memory cap raised to ``size`` for a block (never lowered: a
        BATCHLAKE_DUCKDB_MEMORY above it stays)."""
        return self._memory.cap_at_least(size)

    @oom_is_a_setting
    def release_merged(self, at_least: int = 10_000) -> None:
        """Give back what DuckDB keeps of the row groups this sync merged (it keeps their
        state until the file is detached) before another stage needs the memory cap: the
        results stage after a big first sync ran out of its cap at its first load. Only
        once that many batches were merged since the file was attached."""
        self._memory.reattach_after(at_least)

    def wrote(self, rows: int) -> None:
        """Count rows another stage wrote (result lines): DuckDB keeps their row groups'
        state too, until the file is re-attached (``release_merged``)."""
        self._memory.wrote(rows)

    def _reattach_if_due(self) -> None:
        """Before a merge, once reattach_rows batches were merged since the file was
        attached (db.REATTACH_ROWS). Before, not after: a failure is the next group's."""
        if self.reattach_rows:
            self._memory.reattach_after(self.reattach_rows)

    # -- transactions and queries ------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One transaction under the write lock: committed with the checkpoint's memory
        headroom (a commit may checkpoint) when the block ends, rolled back if it raises."""
        with self.lock:
            con = self.con
            con.execute("BEGIN")
            try:
                yield con
                with checkpoint_headroom(con):
                    con.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(duckdb.TransactionException):  # a failed COMMIT
                    con.execute("ROLLBACK")
                raise

    @oom_is_a_setting
    def query(self, text: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.lock:
            return self.con.execute(text, params or []).fetchall()

    @oom_is_a_setting
    def frame(self, text: str, params: list[Any] | None = None) -> pl.DataFrame:
        with self.lock:
            return query_frame(self.con, text, params)

    # -- chunks ------------------------------------------------------------------------------
    def load_chunk(self, flat: FlatFrames, *, run_id: str, observed_at: datetime
                   ) -> ChunkCounts:
        """Merge one flattened chunk in one transaction; return what changed."""
        return self.load_staged([self.stage_chunk(flat)], run_id=run_id,
                                observed_at=observed_at)

    def load_staged(self, staged: list[StagedChunk], *, run_id: str, observed_at: datetime
                    ) -> ChunkCounts:
        """Merge staged chunks in one transaction (a later part wins over an earlier one for
        the same batch); return what changed. The staged files are removed either way."""
        counts = ChunkCounts(rejected=sum(len(chunk.rejects) for chunk in staged))
        try:
            for c in self._load_parts(staged, run_id=run_id, observed_at=observed_at).values():
                counts.add(c)
        finally:
            for chunk in staged:
                chunk.remove()
        return counts

    @oom_is_a_setting
    def _load_parts(self, staged: list[StagedChunk], *, run_id: str, observed_at: datetime
                    ) -> dict[str, ChunkCounts]:
        """The merge of ``staged`` in one transaction: changes per provider (rejects are
        inserted, not counted, here)."""
        rejects = [r for chunk in staged for r in chunk.rejects]
        by_provider: dict[str, ChunkCounts] = {}
        with self.transaction() as con:
            if any(chunk.batches for chunk in staged):
                read_as_incoming(con, staged)
                by_provider = merge_incoming(con, observed_at, run_id)
            if rejects:
                self._insert_rejects(rejects, run_id, observed_at)
        return by_provider

    def _insert_rejects(self, rejects: list[dict[str, Any]], run_id: str,
                        at: datetime) -> None:
        if not rejects:
            return
        df = pl.DataFrame([{**r, "run_id": run_id, "rejected_at": at} for r in rejects],
                          schema=REJECTS.polars_schema(), orient="row")
        self.con.register("incoming_rejects", ArrowStream(df))
        try:
            cols = ", ".join(quote_name(c) for c in REJECTS.column_names())
            self.con.execute(f"INSERT INTO rejects ({cols}) SELECT {cols} FROM incoming_rejects")
        finally:
            self.con.unregister("incoming_rejects")

    @oom_is_a_setting
    def add_rejects(self, rejects: list[dict[str, Any]], *, run_id: str, at: datetime) -> None:
        """Record rejects outside a chunk (e.g. a whole page that could not be read)."""
        with self.transaction():
            self._insert_rejects(rejects, run_id, at)

    @oom_is_a_setting
    def publish(self, target: str, storage_version: str | None = None) -> Path:
        """Publish a read-only snapshot of everything committed (see warehouse/publish.py)."""
        with self.lock, checkpoint_headroom(self.con):
            return _publish.publish(self.con, target, db_path=self.db_path,
                                    storage_version=storage_version)

    # -- run bookkeeping (run_bookkeeping.py, sql/runs) --------------------------------------
    @oom_is_a_setting
    def start_run(self, run_id: str, provider: str, mode: str, started_at: datetime,
                  watermark: datetime | None) -> None:
        with self.lock:
            runs.start_run(self.con, run_id, provider, mode, started_at, watermark)

    @oom_is_a_setting
    def finish_run(self, run_id: str, provider: str, *, status: str, finished_at: datetime,
                   pages: int, fetched: int, refetched: int, counts: ChunkCounts,
                   warnings: list[str], error: str | None, results_batches: int = 0,
                   result_lines: int = 0, results_failed: int = 0, deferred: int = 0,
                   plan: str = "", results_backlog: int = 0) -> None:
        with self.lock:
            runs.finish_run(self.con, run_id, provider, status=status, finished_at=finished_at,
                            pages=pages, fetched=fetched, refetched=refetched, counts=counts,
                            warnings=warnings, error=error, results_batches=results_batches,
                            result_lines=result_lines, results_failed=results_failed,
                            deferred=deferred, plan=plan, results_backlog=results_backlog)

    @oom_is_a_setting
    def watermark(self, provider: str) -> datetime | None:
        with self.lock:
            return runs.watermark(self.con, provider)

    @oom_is_a_setting
    def advance_watermark(self, provider: str, newest: datetime | None, run_id: str,
                          at: datetime) -> None:
        """Move the watermark forward (never back) once a listing has finished."""
        if newest is None:
            return
        with self.lock:
            runs.advance_watermark(self.con, provider, newest, run_id, at)

    @oom_is_a_setting
    def open_batches(self, provider: str) -> list[tuple[Any, ...]]:
        """Stored non-terminal batches, newest first: what a sync must see again (by listing
        or by id), with what the request planner weighs: (batch_id, created_at,
        deadline_at, last_changed_at, last_seen_at)."""
        with self.lock:
            return runs.open_batches(self.con, provider)

    @oom_is_a_setting
    def stored_since(self, provider: str, unix_s: int | None) -> int:
        """Batches stored for ``provider`` created at ``unix_s`` or later (None: all, those
        without created_at included): what a listing passes on its way down."""
        with self.lock:
            return runs.stored_since(self.con, provider, unix_s)
