"""Opening the DuckDB file (clear errors, waiting for another writer), its memory settings
and the sync's re-attach, migrations."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import polars as pl

from batchlake import sql
from batchlake.common import ConfigError, DatabaseError, DatabaseLocked
from batchlake.transforms import ROW_KEY_SQL, TABLES, create_table_sql

CHECKPOINT_THRESHOLD = "4MB"
DEFAULT_MEMORY_LIMIT = "32MB"  # for syncs; BATCHLAKE_DUCKDB_MEMORY overrides (e.g. 2GB)
# For the results stage, which runs after the batch stage's frames are gone: batch_results_
# state's primary-key index lives in DuckDB's memory and grows with the settled batches.
RESULTS_MEMORY_LIMIT = "128MB"
_LOCK_HINT = re.compile(r"(Could not set lock|Conflicting lock|lock on file)", re.I)
_PID = re.compile(r"PID (\d+)")


def _check_path(db_path: str) -> None:
    if db_path.startswith("md:"):
        # MotherDuck's own docs spell it in lower case; accept both.
        if not any(os.environ.get(v) for v in ("MOTHERDUCK_TOKEN", "motherduck_token")):
            raise ConfigError(
                f"{db_path} is a MotherDuck database but no token is set; "
                "export MOTHERDUCK_TOKEN=… (from app.motherduck.com) or use a local file path")
        return
    if db_path == ":memory:":
        return
    p = Path(db_path)
    if p.exists() and p.is_dir():
        raise ConfigError(f"DB path {db_path} is a directory; pass a file such as "
                          f"{p / 'batchlake.duckdb'}")
    parent = p.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DatabaseError(f"cannot create the folder {parent} for the DB "
                            f"({e.strerror}); pass --db with a writable path") from None
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise DatabaseError(f"DB path {db_path} is not writable; pass --db with a writable "
                            "path or fix its permissions")


OnWait = Callable[[str], None]


_T = TypeVar("_T")


def quote_name(name: str) -> str:
    """A column name as a DuckDB identifier (the schema's names: no quotes in them)."""
    return f'"{name}"'


def is_local_file(db_path: str) -> bool:
    """A file on this machine: not DuckDB's in-memory database, not MotherDuck's."""
    return db_path != ":memory:" and not db_path.startswith("md:")


def _waiting_for_lock(db_path: str, open_file: Callable[[], _T], lock_timeout_s: float,
                      on_wait: OnWait | None) -> _T:
    """``open_file()``, tried again while another process holds the file's lock."""
    deadline = time.monotonic() + lock_timeout_s
    delay = 0.05
    while True:  # returns or raises
        try:
            return open_file()
        except duckdb.IOException as e:
            msg = str(e)
            if not _LOCK_HINT.search(msg):
                raise DatabaseError(f"cannot open {db_path}: {msg.splitlines()[0][:200]}"
                                    ) from None
            pid = _PID.search(msg)
            who = f" (PID {pid.group(1)})" if pid else ""
            if on_wait is not None:
                on_wait(f"{db_path} is in use by another process{who}; waiting up to "
                        f"{lock_timeout_s:g}s")
                on_wait = None
            if time.monotonic() >= deadline:
                raise DatabaseLocked(
                    f"{db_path} is in use by another process{who}; waited "
                    f"{lock_timeout_s:g}s. Wait for it to finish or raise --lock-timeout"
                ) from None
            time.sleep(delay)  # polling a file lock: DuckDB offers no wait primitive
            delay = min(delay * 2, 0.5)
        except duckdb.Error as e:
            raise DatabaseError(f"cannot open {db_path}: {str(e).splitlines()[0][:200]}"
                                ) from None


def _check_before_open(db_path: str, read_only: bool) -> None:
    """A writer's path can be created; a reader's file exists (a read never creates one)."""
    if not read_only:
        _check_path(db_path)
    elif is_local_file(db_path) and not Path(db_path).exists():
        raise DatabaseError(f"no database at {db_path}; run `batchlake sync` (or make demo) "
                            "first, or pass --db")


def connect(db_path: str, *, read_only: bool = False, lock_timeout_s: float = 30.0,
            on_wait: OnWait | None = None, row_group_size: int | None = None
            ) -> duckdb.DuckDBPyConnection:
    """Open ``db_path``; wait up to ``lock_timeout_s`` while another process holds it.

    ``on_wait`` is told once, in one line, that the open is waiting (a read command says so
    on stderr while a sync holds the file). A read-only open never creates a file.
    ``row_group_size``: write the file in row groups of that many rows (the sync's writer
    does, see SYNC_ROW_GROUP_SIZE); readers read any size."""
    _check_before_open(db_path, read_only)
    con = _waiting_for_lock(db_path, lambda: _open(db_path, read_only, row_group_size),
                            lock_timeout_s, on_wait)
    con.execute("SET TimeZone = 'UTC'")
    if not read_only:
        # Checkpoint once the WAL holds 4MB: a checkpoint's memory grows with the table, so a
        # larger threshold only makes each one bigger.
        con.execute(f"SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
    return con


# The sync's row groups, not DuckDB's 122,880: a 15,000-row load then fills row groups, which
# DuckDB writes into the file once, not through the WAL and again at the checkpoint.
SYNC_ROW_GROUP_SIZE = 8192


def _open(db_path: str, read_only: bool, row_group_size: int | None
          ) -> duckdb.DuckDBPyConnection:
    if row_group_size is None or not is_local_file(db_path):
        return duckdb.connect(db_path, read_only=read_only)
    # ROW_GROUP_SIZE is an option of ATTACH, not of connect(): the file is attached to an
    # in-memory connection and made the default catalog, so every name resolves as before.
    con = duckdb.connect()
    try:
        attach_file(con, db_path, read_only, row_group_size)
    except BaseException:
        con.close()
        raise
    return con


def attach_file(con: duckdb.DuckDBPyConnection, db_path: str, read_only: bool,
                row_group_size: int | None) -> None:
    """ATTACH the file as ``batchlake`` (every open and re-attach goes through here)."""
    quoted = "'" + db_path.replace("'", "''") + "'"
    options = [f"ROW_GROUP_SIZE {int(row_group_size)}"] if row_group_size else []
    options += ["READ_ONLY"] if read_only else []
    con.execute(f"ATTACH {quoted} AS batchlake" + (f" ({', '.join(options)})" if options else ""))
    con.execute("USE batchlake")


class FileVisits:
    """Short visits to one file from one DuckDB kept for a command's run: each ``visit()``
    attaches the file (waiting for another process's lock, as ``connect`` does) and detaches
    it after the block, so the file is free between visits. Opening the file for each visit
    made a new DuckDB each time, ~30 ms of registering its functions; an ATTACH costs ~4 ms.
    For a command that reads and writes the file many times (a retry's submit records three
    steps a file). Not thread-safe: one visit at a time. A file that is not local (MotherDuck)
    is opened for each visit."""

    def __init__(self, db_path: str, *, lock_timeout_s: float) -> None:
        self.db_path = db_path
        self.lock_timeout_s = lock_timeout_s
        self._host: duckdb.DuckDBPyConnection | None = None

    @contextlib.contextmanager
    def visit(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        if not is_local_file(self.db_path):
            con = connect(self.db_path, read_only=read_only, lock_timeout_s=self.lock_timeout_s)
            try:
                yield con
            finally:
                con.close()
            return
        _check_before_open(self.db_path, read_only)
        host = self._host_connection()
        _waiting_for_lock(self.db_path,
                          lambda: attach_file(host, self.db_path, read_only, None),
                          self.lock_timeout_s, None)
        try:
            yield host
        finally:
            host.execute("USE memory")
            host.execute("DETACH batchlake")  # checkpoints a written file, frees its lock

    def _host_connection(self) -> duckdb.DuckDBPyConnection:
        if self._host is None:
            self._host = connect(":memory:")  # the settings a writer's connection gets
        return self._host

    def close(self) -> None:
        if self._host is not None:
            self._host.close()
            self._host = None

    def __enter__(self) -> FileVisits:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# A sync re-attaches its file (a local one: ``is_local_file``) after merging this many
# batches: DuckDB keeps the state of every row group in memory until the file is detached.
REATTACH_ROWS = 150_000


def reattach(con: duckdb.DuckDBPyConnection, db_path: str, *, row_group_size: int,
             lock_timeout_s: float) -> None:
    """Detach the sync's file from ``con`` and attach it again, with the commits' memory
    headroom (detaching checkpoints). Settings and temp objects live on the connection and
    stay. Between the two the file's lock is free for an instant: a reader that takes it
    then holds it for its query (readers open per query), and this waits for it, as opening
    does, up to ``lock_timeout_s``."""
    with checkpoint_headroom(con):
        con.execute("USE memory")
        con.execute("DETACH DATABASE IF EXISTS batchlake")  # a failed re-attach left none
        _waiting_for_lock(db_path, lambda: attach_file(con, db_path, False, row_group_size),
                          lock_timeout_s, None)


@contextlib.contextmanager
def reading(db_path: str, *, lock_timeout_s: float = 30.0, on_wait: OnWait | None = None
            ) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection held only for the ``with`` block: readers never keep the file
    from the scheduled sync longer than their query."""
    con = connect(db_path, read_only=True, lock_timeout_s=lock_timeout_s, on_wait=on_wait)
    try:
        yield con
    finally:
        con.close()


def memory_limit() -> str:
    return os.environ.get("BATCHLAKE_DUCKDB_MEMORY", DEFAULT_MEMORY_LIMIT)


# Commits (which may checkpoint) and the close get at least this much, merges the sync's cap:
# a checkpoint that runs out of memory invalidates the whole database, not one statement.
CHECKPOINT_MEMORY_LIMIT = "64MB"
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?\s*$", re.IGNORECASE)


def size_bytes(text: str) -> int | None:
    """'48MB' -> 48000000 (DuckDB's units); None if it is not a plain size."""
    m = _SIZE.match(text)
    if not m:
        return None
    return int(float(m.group(1)) * _UNITS[(m.group(2) or "").lower()])


def checkpoint_memory_limit() -> str:
    """The memory limit for commits and the close: the sync's cap, or more if that is below
    CHECKPOINT_MEMORY_LIMIT."""
    limit = memory_limit()
    have, floor = size_bytes(limit), size_bytes(CHECKPOINT_MEMORY_LIMIT)
    return CHECKPOINT_MEMORY_LIMIT if have is not None and floor and have < floor else limit


@contextlib.contextmanager
def memory_at_least(con: duckdb.DuckDBPyConnection, size: str) -> Iterator[None]:
    """Run a block with DuckDB's cap raised to ``size`` (never lowered), then give the
    connection back the cap it had (which an enclosing block may have raised)."""
    row = con.execute("SELECT current_setting('memory_limit')").fetchone()
    cap = str(row[0]) if row else memory_limit()
    if (size_bytes(cap) or 0) >= (size_bytes(size) or 0):  # room enough: no SET per commit
        yield
        return
    set_memory_limit(con, size)
    try:
        yield
    finally:
        set_memory_limit(con, cap)


def checkpoint_headroom(con: duckdb.DuckDBPyConnection) -> contextlib.AbstractContextManager[None]:
    """Run a commit (and any checkpoint it triggers) with checkpoint_memory_limit()."""
    return memory_at_least(con, checkpoint_memory_limit())


def set_memory_limit(con: duckdb.DuckDBPyConnection, size: str) -> None:
    # A size needs no quotes; dropping them means none can break out of the SQL string.
    con.execute(f"SET memory_limit = '{size.replace(chr(39), '')}'")


def sync_threads() -> int:
    """DuckDB threads during a sync: all cores but one. The sync's Python threads (fetch and
    flatten) need a core of their own; merges of a chunk's rows gain little from more
    threads."""
    return max(1, (os.cpu_count() or 2) - 1)


def tune_for_sync(con: duckdb.DuckDBPyConnection) -> None:
    """Cap DuckDB's memory (``memory_limit``) and threads for a sync. The merges spill past
    the cap; nothing in a sync needs an index held in memory."""
    limit = memory_limit()
    try:
        set_memory_limit(con, limit)
    except duckdb.Error:
        raise ConfigError(f"BATCHLAKE_DUCKDB_MEMORY={limit!r} is not a memory size; use e.g. "
                          "256MB or 2GB") from None
    con.execute(f"SET threads = {sync_threads()}")


class SyncFileMemory:
    """What DuckDB's memory holds of the sync's file: its cap raised for a block, and the rows
    written since the file was attached, given back by re-attaching it (``reattach``)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, db_path: str, *,
                 lock: threading.RLock, lock_timeout_s: float) -> None:
        self.con = con
        self.db_path = db_path
        self.lock = lock  # the connection's write lock
        self.lock_timeout_s = lock_timeout_s
        self.written = 0  # rows written since the file was (re)attached

    @contextlib.contextmanager
    def cap_at_least(self, size: str) -> Iterator[None]:
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

    def wrote(self, rows: int) -> None:
        self.written += rows

    def reattach_after(self, rows: int) -> None:
        """Re-attach the file once ``rows`` rows were written since it was attached."""
        if self.written >= rows:
            with self.lock:
                reattach(self.con, self.db_path, row_group_size=SYNC_ROW_GROUP_SIZE,
                         lock_timeout_s=self.lock_timeout_s)
            self.written = 0


def migration_values() -> dict[str, str]:
    return {**{f"create:{t.name}": create_table_sql(t) for t in TABLES},
            "row_key": ROW_KEY_SQL}


@functools.cache
def schema_fingerprint() -> str:
    """A digest of everything ``migrate`` would apply: unchanged means nothing to do. Once a
    process: its files do not change under it, and every open asks."""
    parts = [sql.read(f"migrations/{n}") for n in sql.listing("migrations")]
    parts += [sql.read(f"views/{n}") for n in sql.listing("views")]
    parts += [v for _, v in sorted(migration_values().items())]  # what they are rendered with
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Apply pending migrations, add columns the schema gained, (re)create views.

    Returns the schema version. Runs in one transaction: all or nothing. A file already
    migrated by this very schema costs one query (every sync opens the file).
    """
    fingerprint = schema_fingerprint()
    try:
        done = con.execute("SELECT s.fingerprint, max(m.version) FROM schema_state s, "
                           "schema_migrations m GROUP BY ALL").fetchall()
        if done and done[0][0] == fingerprint:
            return int(done[0][1])
    except duckdb.CatalogException:
        pass  # a new file
    con.execute("BEGIN")
    try:
        con.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
            "name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        # Each file not yet applied, by its number: numbers need not be contiguous, and a
        # file numbered below one already applied (branches merged) still runs.
        applied = {int(r[0]) for r in con.execute(
            "SELECT version FROM schema_migrations").fetchall()}
        values = migration_values()
        version = max(applied, default=0)
        for name in sql.listing("migrations"):
            number = int(name.split("_", 1)[0])
            version = max(version, number)
            if number in applied:
                continue
            for stmt in sql.statements(sql.render(sql.read(f"migrations/{name}"), values)):
                con.execute(stmt)
            con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
                        [number, name])
        _evolve(con)
        for name in sql.listing("views"):
            for stmt in sql.statements(sql.read(f"views/{name}")):
                con.execute(stmt)
        con.execute("CREATE OR REPLACE TABLE schema_state AS SELECT ? AS fingerprint",
                    [fingerprint])
        con.execute("COMMIT")
    except duckdb.Error:
        con.execute("ROLLBACK")
        raise
    return version


def _evolve(con: duckdb.DuckDBPyConnection) -> None:
    """Columns declared in the schema but missing from an older file are added (NULL)."""
    # One query for every table, not one per table: a new file's first sync pays for each.
    have = set(con.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_catalog = current_database()"
    ).fetchall())
    for t in TABLES:
        for c in t.columns:
            if (t.name, c.name) not in have:
                con.execute(f'ALTER TABLE "{t.name}" ADD COLUMN "{c.name}" {c.duckdb_type}')


def query_frame(con: duckdb.DuckDBPyConnection, text: str,
                params: list[Any] | dict[str, Any] | None = None) -> pl.DataFrame:
    """Run a query and return a polars frame (via Arrow).

    DuckDB 2.0: results of ``execute`` must be consumed before the next statement, and
    relations have no ``fetchone``; ``sql(...).pl()`` does both right."""
    df: pl.DataFrame = con.sql(text, params=params or None).pl()
    return df
