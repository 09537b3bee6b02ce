"""Loading frames into DuckDB: set-based merges, one transaction per load chunk.

Flattened frames are staged as Parquet files by the thread that flattened them (polars writes
them in Rust, off the loader's path), and the loader thread merges several staged parts in one
transaction, reading them with DuckDB's own Parquet reader: never row by row, and no Python
object for DuckDB to call back into while it scans. A transaction's batches, children,
snapshots and rejects commit together, so a crash leaves the last committed state; a re-run
converges because every statement is an idempotent merge.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import itertools
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import duckdb
import polars as pl

from batchlake import sql
from batchlake.common import DatabaseError
from batchlake.transforms import (
    BATCH_SNAPSHOTS,
    BATCHES,
    REJECTS,
    ROW_KEY_SQL,
    STAGED_BATCH_COLUMNS,
    FlatFrames,
)
from batchlake.warehouse import publish as _publish
from batchlake.warehouse.db import (
    REATTACH_ROWS,
    SYNC_ROW_GROUP_SIZE,
    checkpoint_headroom,
    checkpoint_memory_limit,
    connect,
    is_local_file,
    memory_at_least,
    memory_limit,
    migrate,
    query_frame,
    reattach,
    set_memory_limit,
    tune_for_sync,
)


class ArrowStream:
    """A polars frame as an Arrow C stream (PyCapsule): DuckDB scans it without pyarrow,
    which saves the import (~22 MB) and a copy. A fresh stream per request, since DuckDB may
    ask more than once (schema, then scan). Used for rejects; chunks are staged as Parquet."""

    def __init__(self, df: pl.DataFrame) -> None:
        self.df = df

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        return self.df.__arrow_c_stream__(requested_schema)


# Each staged frame carries its part number, so that a transaction over several parts keeps
# the last occurrence of a batch (and that occurrence's children), as one flattened chunk does.
# sql/merge/01_stage.sql and 05_children.sql read it by this name.
PART_COLUMN = "part"
_STAGED_FRAMES = ("batches", "errors", "metadata")


@dataclass
class StagedChunk:
    """One flattened chunk written to Parquet, waiting for its load transaction. (Handing
    the frames to DuckDB as Arrow instead was no faster here, and held ~50-90 MB more:
    measured with 100k wild objects.)"""

    files: dict[str, str]  # frame name -> Parquet path
    batches: int
    rejects: list[dict[str, Any]] = field(default_factory=list)
    providers: tuple[str, ...] = ()  # whose rows it holds

    def remove(self) -> None:
        for path in self.files.values():
            Path(path).unlink(missing_ok=True)


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


def _q(name: str) -> str:
    return f'"{name}"'


def _hash_input(name: str) -> str:
    # chr(0) stands for NULL so that NULL and '' hash differently.
    return f"coalesce(CAST(i.{_q(name)} AS VARCHAR), chr(0))"


def merge_values() -> dict[str, str]:
    staged = list(STAGED_BATCH_COLUMNS)
    tracked = [c.name for c in BATCHES.columns
               if c.tracked and c.name in staged and c.name not in ("provider", "batch_id")]
    snap = [c.name for c in BATCH_SNAPSHOTS.columns
            if c.name not in ("provider", "batch_id", "observed_at", "run_id")]
    return {
        # One definition for both plans: an appended batch must hash as the general merge
        # hashes it when it is read again, or it would read as changed.
        "content_hash": "md5(concat_ws(chr(31), "
                        + ", ".join(_hash_input(c) for c in tracked) + "))",
        "row_key": ROW_KEY_SQL,
        "snapshot_cols": ", ".join(_q(c) for c in snap),
        "snapshot_cols_s": ", ".join(f"s.{_q(c)}" for c in snap),
        "staged_cols": ", ".join(_q(c) for c in staged),
        "staged_cols_s": ", ".join(f"s.{_q(c)}" for c in staged),
    }


@dataclass(frozen=True)
class MergeStatement:
    """One statement of ``sql/merge``: it runs when any of the chunk's counts named in its
    ``-- when:`` line is non-zero (always, without one)."""

    text: str
    when: frozenset[str]

    def applies(self, counts: ChunkCounts) -> bool:
        return not self.when or any(getattr(counts, name) for name in self.when)

    def params(self, observed_at: datetime, run_id: str) -> list[Any]:
        return ([observed_at, run_id] if "$2" in self.text
                else [observed_at] if "$1" in self.text else [])


def _statement(text: str) -> MergeStatement:
    when = [ln.split(":", 1)[1] for ln in text.splitlines() if ln.startswith("-- when:")]
    names = frozenset(n.strip() for part in when for n in part.split(","))
    unknown = names - {"inserted", "updated", "unchanged"}
    if unknown:
        raise ValueError(f"unknown count in a merge statement's '-- when:': {sorted(unknown)}")
    return MergeStatement(text, names)


@dataclass(frozen=True)
class MergePlan:
    """A load group's merge. First ``sql/append``: key the group (01) and probe it (02); a
    group of new batches, each once, is appended as read (03). Any other group takes the
    general merge, ``sql/merge``: stage it (01), count what is new/changed/unchanged (02),
    then run the statements those counts call for (03-05)."""

    keys: list[MergeStatement]
    probe_query: str
    append: list[MergeStatement]
    stage: list[MergeStatement]
    counts_query: str
    apply: list[MergeStatement]


_PLAN: MergePlan | None = None


def merge_plan() -> MergePlan:
    global _PLAN
    if _PLAN is None:
        values = merge_values()

        def parse(name: str) -> list[MergeStatement]:
            return [_statement(t) for t in sql.statements(sql.render(sql.read(name), values))]

        names = sql.listing("merge")
        _PLAN = MergePlan(parse("append/01_keys.sql"), sql.read("append/02_probe.sql"),
                          parse("append/03_append.sql"),
                          parse("merge/01_stage.sql"), sql.read("merge/02_counts.sql"),
                          [st for n in names if n[:2] > "02" for st in parse(f"merge/{n}")])
    return _PLAN


@dataclass
class ChunkCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    snapshots: int = 0

    def add(self, other: ChunkCounts) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.rejected += other.rejected
        self.snapshots += other.snapshots


P = ParamSpec("P")
R = TypeVar("R")


_MEMORY_WORDS = ("could not allocate", "failed to pin", "out of memory")


def _fatal_message(e: duckdb.Error) -> str:
    """One line for an error after which DuckDB has invalidated the database."""
    text = str(e)
    if "Original error:" in text:  # a later statement, repeating the first fatal error
        text = text.split("Original error:", 1)[1]
    first = text.strip().strip('"').splitlines()[0] if text.strip() else "no message"
    if any(w in text.lower() for w in _MEMORY_WORDS):
        return (f"DuckDB ran out of memory writing the database file (checkpoint limit "
                f"{checkpoint_memory_limit()}); the last committed chunk is kept: set "
                "BATCHLAKE_DUCKDB_MEMORY higher (e.g. 256MB) and run the sync again")
    return (f"DuckDB stopped with a fatal error ({first[:200]}); the last committed chunk is "
            "kept: run the sync again")


def _oom_is_a_setting(fn: Callable[P, R]) -> Callable[P, R]:
    """DuckDB running out of the sync's memory cap is a setting to raise, not a crash; so is
    a fatal error (DuckDB's answer to running out of memory in a checkpoint)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except duckdb.OutOfMemoryException:
            raise DatabaseError(
                f"DuckDB ran out of the sync's {memory_limit()} memory cap; set "
                "BATCHLAKE_DUCKDB_MEMORY higher (e.g. 256MB) or --chunk-size lower, and run "
                "the sync again") from None
        except duckdb.FatalException as e:
            raise DatabaseError(_fatal_message(e)) from None
        except duckdb.IOException as e:
            # An attached file (the sync's writer, see db.SYNC_ROW_GROUP_SIZE) reports its
            # invalidation as an IO error, not a fatal one.
            if "has been invalidated" in str(e):
                raise DatabaseError(_fatal_message(e)) from None
            raise

    return wrapper


class Warehouse:
    """batchlake's DuckDB file. Thread-safe: writes are serialised by one lock, so fetch
    threads of several providers can share it."""

    @_oom_is_a_setting
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
        # One loader thread: merges run while the callers flatten the next parts. Loads wait
        # in one queue, shared by every provider's sync, and the loader takes what waits (up
        # to group_rows objects) into one transaction once a group's worth waits or a caller
        # is about to wait on a load; while it merges, the next group fills (group commit).
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="duckdb-loader")
        self._waiting: collections.deque[_Load] = collections.deque()
        self._waiting_changed = threading.Condition()
        self._waiting_rows = 0
        self._urgent = False  # merge what waits now, even less than a group
        self.group_rows = group_rows
        # The loader idles until the first group waits, and it is the sync's slowest stage:
        # the first merge takes half a group, so it starts sooner; later groups fill while
        # it merges. Measured (100k wild objects, five providers, 9 paired runs): 2.4% less
        # wall (median; the pairs ranged from -9% to +4%).
        self._group_threshold = max(1, group_rows // 2)
        # Staged parts wait as files until merged: at most two transactions' worth.
        self.max_waiting_rows = 2 * group_rows
        # Batches merged since the file was (re)attached: see db.REATTACH_ROWS.
        self.reattach_rows = REATTACH_ROWS if is_local_file(db_path) else 0
        self._merged_since_attach = 0

    @_oom_is_a_setting
    def close(self) -> None:
        self.merge_waiting_now()  # whatever was handed over is merged, as it always was
        self._loader.shutdown(wait=True)
        # Closing checkpoints what the WAL holds: give it the commits' headroom. Suppressed:
        # a database already invalidated raised its error where that happened.
        with contextlib.suppress(duckdb.FatalException):
            set_memory_limit(self.con, checkpoint_memory_limit())
        shutil.rmtree(self._stage_dir, ignore_errors=True)
        self.con.close()

    def stage_path(self, name: str) -> str:
        """A fresh path in the staging folder (removed at close, whatever is left)."""
        return str(Path(self._stage_dir) / f"{name}-{next(self._parts):06d}.parquet")

    def stage_chunk(self, flat: FlatFrames) -> StagedChunk:
        """Write a flattened chunk to Parquet (on the calling thread) for a later
        ``load_staged_async``; its frames can then be dropped. Parts are numbered in order:
        a later part wins over an earlier one for the same batch."""
        part = next(self._parts)
        files = {}
        for name in _STAGED_FRAMES:
            df: pl.DataFrame = getattr(flat, name)
            path = str(Path(self._stage_dir) / f"{name}-{part:06d}.parquet")
            # Uncompressed: the file lives for one merge, on local disk; lz4 cost 1.4% of the
            # sync's wall in writing and reading it back (median of 7 paired runs, 100k wild).
            df.with_columns(pl.lit(part, pl.Int64).alias(PART_COLUMN)).write_parquet(
                path, compression="uncompressed", statistics=False)
            files[name] = path
        providers = tuple(flat.batches.get_column("provider").unique().sort().to_list())
        return StagedChunk(files, flat.batches.height, list(flat.rejects), providers)

    def load_staged_async(self, staged: list[StagedChunk], *, run_id: str,
                          observed_at: datetime, now: bool = True) -> Future[ChunkCounts]:
        """Merge staged chunks on the loader thread, in one transaction with whatever else
        waits there (other providers' chunks included). The future's counts are this
        provider's changes in that transaction; when several of one provider's loads share
        it, the first carries them and the others count only their rejects.

        ``now=False``: the load may wait until group_rows objects wait in all (merges of
        15,000 rows cost DuckDB less per row than merges of 2,000) or until someone calls
        ``merge_waiting_now`` — as a sync does before it waits on a future."""
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

    def merge_waiting_now(self) -> None:
        """Merge what waits without waiting for a full group (the caller is about to wait
        for one of those loads)."""
        with self._waiting_changed:
            if not self._waiting:
                return
            self._urgent = True
        self._loader.submit(self._merge_waiting)

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
                self._reattach_if_due()
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

    @contextlib.contextmanager
    def memory_cap(self, size: str) -> Iterator[None]:
        """DuckDB's memory cap raised to ``size`` for a block (never lowered: a
        BATCHLAKE_DUCKDB_MEMORY above it stays)."""
        raised = contextlib.ExitStack()  # the SETs take the lock; the block does not
        with self.lock:
            raised.enter_context(memory_at_least(self.con, size))
        try:
            yield
        finally:
            with self.lock:
                raised.close()

    @_oom_is_a_setting
    def release_merged(self, at_least: int = 10_000) -> None:
        """Give back what DuckDB keeps of the row groups this sync merged (it keeps their
        state until the file is detached) before another stage needs the memory cap: the
        results stage after a first sync of 100,000 batches ran out of the 32MB cap at its
        first load. Only once that many batches were merged since the file was attached."""
        self._reattach_after(at_least)

    def _reattach_after(self, rows: int) -> None:
        """Re-attach the file once ``rows`` rows were written since it was attached."""
        if self._merged_since_attach >= rows:
            with self.lock:
                reattach(self.con, self.db_path, row_group_size=SYNC_ROW_GROUP_SIZE,
                         lock_timeout_s=self.lock_timeout_s)
            self._merged_since_attach = 0

    def wrote(self, rows: int) -> None:
        """Count rows another stage wrote (result lines): DuckDB keeps their row groups'
        state too, until the file is re-attached (``release_merged``)."""
        self._merged_since_attach += rows

    def _reattach_if_due(self) -> None:
        """Before a merge, once reattach_rows batches were merged since the file was
        attached (db.REATTACH_ROWS). Before, not after: a failure is the next group's."""
        if self.reattach_rows:
            self._reattach_after(self.reattach_rows)

    def _merge_group(self, group: list[_Load]) -> None:
        by_provider = self._load_parts([c for load in group for c in load.staged],
                                       run_id=group[0].run_id, observed_at=group[0].observed_at)
        self._merged_since_attach += sum(load.rows for load in group)
        for load in group:
            counts = ChunkCounts(rejected=sum(len(c.rejects) for c in load.staged))
            for provider in load.providers & by_provider.keys():
                counts.add(by_provider.pop(provider))
            load.future.set_result(counts)

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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

    @_oom_is_a_setting
    def query(self, text: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.lock:
            return self.con.execute(text, params or []).fetchall()

    @_oom_is_a_setting
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

    @_oom_is_a_setting
    def _load_parts(self, staged: list[StagedChunk], *, run_id: str, observed_at: datetime
                    ) -> dict[str, ChunkCounts]:
        """The merge of ``staged`` in one transaction: changes per provider (rejects are
        inserted, not counted, here)."""
        rejects = [r for chunk in staged for r in chunk.rejects]
        by_provider: dict[str, ChunkCounts] = {}
        with self.transaction() as con:
            if any(chunk.batches for chunk in staged):
                for name in _STAGED_FRAMES:
                    paths = ", ".join(
                        "'" + chunk.files[name].replace("'", "''") + "'" for chunk in staged)
                    con.execute(f"CREATE OR REPLACE TEMP VIEW incoming_{name} AS "
                                f"SELECT * FROM read_parquet([{paths}])")
                by_provider = self._merge_staged(con, observed_at, run_id)
            if rejects:
                self._insert_rejects(rejects, run_id, observed_at)
        return by_provider

    @staticmethod
    def _merge_staged(con: duckdb.DuckDBPyConnection, observed_at: datetime, run_id: str
                      ) -> dict[str, ChunkCounts]:
        """Run the merge plan over the incoming_* views, inside the caller's transaction."""
        plan = merge_plan()

        def run(statements: list[MergeStatement]) -> None:
            for stmt in statements:
                con.execute(stmt.text, stmt.params(observed_at, run_id))

        run(plan.keys)
        # fetchall, not fetchone: DuckDB 2.0 refuses the next statement while a result is
        # unfinished.
        probe = con.execute(plan.probe_query).fetchall()
        if not any(repeated or stored for _, _, repeated, stored in probe):
            run(plan.append)
            return {p: ChunkCounts(inserted=int(n), snapshots=int(n)) for p, n, _, _ in probe}
        run(plan.stage)
        by_provider: dict[str, ChunkCounts] = {}
        counts = ChunkCounts()
        for provider, *row in con.execute(plan.counts_query).fetchall():
            c = ChunkCounts(*(int(v) for v in row))
            c.snapshots = c.inserted + c.updated
            by_provider[provider] = c
            counts.add(c)
        run([stmt for stmt in plan.apply if stmt.applies(counts)])
        return by_provider

    def _insert_rejects(self, rejects: list[dict[str, Any]], run_id: str,
                        at: datetime) -> None:
        if not rejects:
            return
        df = pl.DataFrame([{**r, "run_id": run_id, "rejected_at": at} for r in rejects],
                          schema=REJECTS.polars_schema(), orient="row")
        self.con.register("incoming_rejects", ArrowStream(df))
        try:
            cols = ", ".join(_q(c) for c in REJECTS.column_names())
            self.con.execute(f"INSERT INTO rejects ({cols}) SELECT {cols} FROM incoming_rejects")
        finally:
            self.con.unregister("incoming_rejects")

    @_oom_is_a_setting
    def add_rejects(self, rejects: list[dict[str, Any]], *, run_id: str, at: datetime) -> None:
        """Record rejects outside a chunk (e.g. a whole page that could not be read)."""
        with self.transaction():
            self._insert_rejects(rejects, run_id, at)

    @_oom_is_a_setting
    def publish(self, target: str, storage_version: str | None = None) -> Path:
        """Publish a read-only snapshot of everything committed (see warehouse/publish.py)."""
        with self.lock, checkpoint_headroom(self.con):
            return _publish.publish(self.con, target, db_path=self.db_path,
                                    storage_version=storage_version)

    # -- run bookkeeping ---------------------------------------------------------------------
    @_oom_is_a_setting
    def start_run(self, run_id: str, provider: str, mode: str, started_at: datetime,
                  watermark: datetime | None) -> None:
        with self.lock:
            self.con.execute(
                "INSERT OR REPLACE INTO sync_runs (run_id, provider, mode, started_at, status, "
                "watermark_used, pages, fetched, refetched_by_id, inserted, updated, unchanged, "
                "rejected, snapshots_appended, results_batches, result_lines, results_failed, "
                "deferred) VALUES (?, ?, ?, ?, 'running', ?, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)",
                [run_id, provider, mode, started_at, watermark])

    @_oom_is_a_setting
    def finish_run(self, run_id: str, provider: str, *, status: str, finished_at: datetime,
                   pages: int, fetched: int, refetched: int, counts: ChunkCounts,
                   warnings: list[str], error: str | None, results_batches: int = 0,
                   result_lines: int = 0, results_failed: int = 0, deferred: int = 0,
                   plan: str = "", results_backlog: int = 0) -> None:
        with self.lock:
            self.con.execute(
                "UPDATE sync_runs SET finished_at = ?, status = ?, pages = ?, fetched = ?, "
                "refetched_by_id = ?, inserted = ?, updated = ?, unchanged = ?, rejected = ?, "
                "snapshots_appended = ?, warnings = ?, error_message = ?, results_batches = ?, "
                "result_lines = ?, results_failed = ?, deferred = ?, plan = ?, "
                "results_backlog = ? WHERE run_id = ? AND provider = ?",
                [finished_at, status, pages, fetched, refetched, counts.inserted,
                 counts.updated, counts.unchanged, counts.rejected, counts.snapshots,
                 "; ".join(warnings) or None, error, results_batches, result_lines,
                 results_failed, deferred, plan or None, results_backlog, run_id, provider])

    def watermark(self, provider: str) -> datetime | None:
        rows = self.query("SELECT watermark FROM sync_state WHERE provider = ?", [provider])
        return rows[0][0] if rows else None

    @_oom_is_a_setting
    def advance_watermark(self, provider: str, newest: datetime | None, run_id: str,
                          at: datetime) -> None:
        """Move the watermark forward (never back) once a listing has finished."""
        if newest is None:
            return
        with self.lock:
            self.con.execute(
                "INSERT INTO sync_state (provider, watermark, updated_at, run_id) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (provider) DO UPDATE SET "
                "watermark = greatest(sync_state.watermark, excluded.watermark), "
                "updated_at = excluded.updated_at, run_id = excluded.run_id",
                [provider, newest, at, run_id])

    def open_batches(self, provider: str) -> list[tuple[Any, ...]]:
        """Stored non-terminal batches, newest first: what a sync must see again (by listing
        or by id), with what the request planner weighs: (batch_id, created_at,
        deadline_at, last_changed_at, last_seen_at)."""
        return self.query(
            "SELECT batch_id, created_at, least(deadline_at, expires_at), last_changed_at, "
            "last_seen_at FROM batches WHERE provider = ? AND NOT is_terminal "
            "ORDER BY created_at DESC NULLS LAST", [provider])

    def stored_since(self, provider: str, unix_s: int | None) -> int:
        """Batches stored for ``provider`` created at ``unix_s`` or later (None: all, those
        without created_at included): what a listing passes on its way down."""
        q = "SELECT count(*) FROM batches WHERE provider = ?"
        params: list[Any] = [provider]
        if unix_s is not None:
            q += " AND created_at >= to_timestamp(?)"
            params.append(unix_s)
        return int(self.query(q, params)[0][0])


