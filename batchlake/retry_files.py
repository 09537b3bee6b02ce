"""The files ``batchlake retry`` writes: one per (source batch, endpoint, model), split at the
provider's limits, in the provider's own input format, and a manifest that names them.

Files are written into a staging folder inside the output folder and moved in only when the
whole run succeeded: a run that stops (an input the gateway cannot return, an interrupt)
leaves the folder as it was. The files of an earlier run named in the folder's manifest are
replaced, so the folder holds one run's files, never a mix.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from batchlake.common import ConfigError
from batchlake.transforms import MAX_FILE_BYTES, MAX_FILE_REQUESTS, FileGroup, file_name

MANIFEST = "retry-manifest.json"


@dataclass
class RetryFile:
    """One retry file: what it holds and, once submitted, the batch made of it."""

    name: str
    provider: str
    source_batch_id: str
    root_batch_id: str
    endpoint: str | None
    model: str | None
    path: Path
    requests: int = 0
    bytes: int = 0
    estimated_cost_usd: float = 0.0
    unpriced: int = 0  # requests no stored cost could estimate
    uploaded_file_id: str | None = None
    retry_batch_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "source_batch_id":
                self.source_batch_id, "root_batch_id": self.root_batch_id,
                "endpoint": self.endpoint, "model": self.model, "requests": self.requests,
                "bytes": self.bytes, "estimated_cost_usd": round(self.estimated_cost_usd, 6),
                "unpriced_requests": self.unpriced, "retry_batch_id": self.retry_batch_id}


@dataclass
class RetryWriter:
    """Writes retry lines into files by group; ``commit`` moves them into ``out_dir``."""

    out_dir: Path
    provider: str
    run_id: str
    files: list[RetryFile] = field(default_factory=list)
    _open: dict[FileGroup, tuple[RetryFile, IO[bytes]]] = field(default_factory=dict)
    _parts: dict[FileGroup, int] = field(default_factory=dict)
    _staging: Path | None = None

    @property
    def staging(self) -> Path:
        if self._staging is None:
            self._staging = self.out_dir / f".batchlake-retry-{self.run_id}"
            self._staging.mkdir(parents=True, exist_ok=False)
        return self._staging

    def add(self, group: FileGroup, root: str, line: bytes, cost: float | None) -> RetryFile:
        """Write ``line`` into its group's file, opening the group's next part when the
        current one would pass the limits."""
        size = len(line) + 1
        current = self._open.get(group)
        if current is not None and (current[0].requests + 1 > MAX_FILE_REQUESTS
                                    or current[0].bytes + size > MAX_FILE_BYTES):
            current[1].close()
            current = None
        if current is None:
            part = self._parts.get(group, 0) + 1
            self._parts[group] = part
            name = file_name(self.provider, group, part)
            rf = RetryFile(name, self.provider, group.source_batch_id, root, group.endpoint,
                           group.model, self.staging / name)
            current = (rf, open(rf.path, "wb"))  # noqa: SIM115 (closed by close_groups)
            self._open[group] = current
            self.files.append(rf)
        rf, fh = current
        fh.write(line + b"\n")
        rf.requests += 1
        rf.bytes += size
        if cost is None:
            rf.unpriced += 1
        else:
            rf.estimated_cost_usd += cost
        return rf

    def close_groups(self) -> None:
        """Close every open file (a chain is done: its groups take no more lines)."""
        for _, fh in self._open.values():
            fh.close()
        self._open.clear()

    def abort(self) -> None:
        """Drop what was written; the output folder is as it was."""
        self.close_groups()
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
        self.files = []

    def commit(self) -> list[RetryFile]:
        """Move the files into the output folder (replacing an earlier run's files named in
        its manifest) and write the manifest; the files, at their final paths."""
        self.close_groups()
        previous = _manifest_files(self.out_dir)
        for name in previous - {f.name for f in self.files}:
            with contextlib.suppress(FileNotFoundError):
                (self.out_dir / name).unlink()
        for f in self.files:
            final = self.out_dir / f.name
            os.replace(f.path, final)
            f.path = final
        manifest = {"run_id": self.run_id, "provider": self.provider,
                    "files": [f.as_json() for f in self.files]}
        tmp = self.out_dir / f".{MANIFEST}.{self.run_id}"
        tmp.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
        os.replace(tmp, self.out_dir / MANIFEST)
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
        return self.files


def _manifest_files(out_dir: Path) -> set[str]:
    """The retry files an earlier run's manifest names (only names batchlake gives)."""
    try:
        data = orjson.loads((out_dir / MANIFEST).read_bytes())
        names = {f["name"] for f in data.get("files", []) if isinstance(f, dict)}
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return set()
    return {n for n in names if isinstance(n, str) and n.startswith("retry_")
            and n.endswith(".jsonl") and "/" not in n and "\\" not in n}


def prepare_out_dir(out: str) -> Path:
    """The output folder, created if need be; one line if it cannot be."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {out} is a file; pass a folder for the retry files")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create the folder {out} ({e.strerror}); pass --out with "
                          "a writable folder") from None
    if not os.access(path, os.W_OK):
        raise ConfigError(f"the folder {out} is not writable; pass --out with a writable "
                          "folder")
    return path


def read_chunks(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    """A file's bytes, ``size`` at a time (input files are never read whole)."""
    with open(path, "rb") as f:
        while chunk := f.read(size):
            yield chunk
