"""A read-only snapshot of the database for tools that keep a connection open.

A BI tool, DBeaver or a long notebook holds its DuckDB file open, which a live database's
sync cannot allow. After its last commit a sync can publish a copy that the writer never
touches again: written beside the target under a temporary name, flushed, then moved over the
target with one ``rename``. A reader sees the previous snapshot until it reopens, and never a
half-written file (on POSIX a rename replaces the name, while open files keep their old data).

Many drivers still embed DuckDB 1.x, which cannot read DuckDB 2.0's storage format; DuckDB
2.0 can write an older one (``STORAGE_VERSION 'v1.4.0'``, which DuckDB 1.4.4 opens).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import duckdb

from batchlake.common import ConfigError, DatabaseError

_STORAGE_VERSION = re.compile(r"^v\d+\.\d+\.\d+$")
_ALIAS = "batchlake_publish"


def check_storage_version(version: str | None) -> str | None:
    if version is None or version == "":
        return None
    if not _STORAGE_VERSION.match(version):
        raise ConfigError(f"publish storage version {version!r} is not like v1.4.0; use the "
                          "DuckDB release whose readers must open the snapshot")
    return version


def check_target(target: str, db_path: str) -> Path:
    path = Path(target)
    if path.resolve() == Path(db_path).resolve():
        raise ConfigError(f"--publish {target} is the database itself; publish to another file")
    if path.exists() and path.is_dir():
        raise ConfigError(f"--publish {target} is a directory; pass a file such as "
                          f"{path / 'batchlake-published.duckdb'}")
    if not path.parent.exists() or not os.access(path.parent, os.W_OK):
        raise ConfigError(f"--publish {target}: the folder {path.parent} does not exist or is "
                          "not writable")
    return path


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def publish(con: duckdb.DuckDBPyConnection, target: str, *, db_path: str,
            storage_version: str | None = None) -> Path:
    """Copy the whole database (tables and views) to ``target``, atomically."""
    path = check_target(target, db_path)
    version = check_storage_version(storage_version)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    for leftover in (tmp, Path(f"{tmp}.wal")):
        leftover.unlink(missing_ok=True)
    source = con.execute("SELECT current_database()").fetchall()[0][0]
    options = f" (STORAGE_VERSION {_quote(version)})" if version else ""
    try:
        con.execute(f"ATTACH {_quote(str(tmp))} AS {_ALIAS}{options}")
        try:
            con.execute(f'COPY FROM DATABASE "{source}" TO {_ALIAS}')
        finally:
            con.execute(f"DETACH {_ALIAS}")
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        with contextlib.suppress(OSError):  # make the rename itself durable
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except duckdb.Error as e:
        raise DatabaseError(f"cannot publish the snapshot to {target}: "
                            f"{str(e).splitlines()[0][:200]}") from None
    finally:
        for leftover in (tmp, Path(f"{tmp}.wal")):
            leftover.unlink(missing_ok=True)
    return path
