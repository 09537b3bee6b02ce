"""The inputs stage (opt-in: ``batchlake sync --inputs``): what each finished batch asked for.

For each finished batch whose input file is not read yet (newest first, within the run's
results budget), the file is streamed to disk through the gateway (gateway/files_api.py),
read line by line and stored as ``batch_requests`` rows: key, endpoint, model, max_tokens,
temperature, body size and a hash of the body; the body itself only with
``--store-request-bodies`` (redacted), since prompts are users' data. ``v_request_outcomes``
joins them to the results. A file the gateway cannot return (Gemini through Bifrost;
Anthropic has none and is never asked) is settled unavailable with the reason; a transient
fault leaves it for the next run.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from batchlake.common import (
    GatewayError,
    Settings,
)
from batchlake.gateway import FilesClient
from batchlake.results_reader import fault_of
from batchlake.retry_files import read_chunks
from batchlake.run import now_utc
from batchlake.transforms import (
    INLINE_PROVIDERS,
    InputLineError,
    InputRequest,
    parse_input_line,
    request_rows,
    split_lines,
)
from batchlake.warehouse import PendingInput, Warehouse, pending_inputs, store_inputs

PART_REQUESTS = 20_000  # requests flattened (and staged) at a time


@dataclass
class InputsRead:
    """What one inputs stage did, per provider."""

    batches: Counter[str] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    unavailable: Counter[str] = field(default_factory=Counter)
    retry: Counter[str] = field(default_factory=Counter)
    left: int = 0  # batches the budget left for a later run
    reasons: dict[str, str] = field(default_factory=dict)  # provider -> the last failure

    def lines(self) -> dict[str, str]:
        """One line per provider, for the sync's output."""
        out = {}
        for p in sorted({*self.batches, *self.unavailable, *self.retry}):
            text = (f"inputs: {self.batches[p]:,} batches' input files read "
                    f"({self.requests[p]:,} requests)")
            if self.unavailable[p]:
                text += f", {self.unavailable[p]:,} unavailable ({self.reasons.get(p, '')})"
            if self.retry[p]:
                text += f", {self.retry[p]:,} to try again"
            out[p] = text
        return out


def read_inputs(settings: Settings, *, run_id: str, store_bodies: bool = False,
                budget_s: float | None = None) -> InputsRead:
    """Read the input files of the finished batches of ``settings.providers`` not read yet;
    ``budget_s`` seconds at most (None: the settings' results budget; 0: no limit)."""
    budget = settings.results_budget_s if budget_s is None else budget_s
    deadline = time.monotonic() + budget if budget > 0 else None
    done = InputsRead()
    providers = [p for p in settings.providers if p not in INLINE_PROVIDERS]
    tmp = Path(tempfile.mkdtemp(prefix="batchlake-inputs-"))
    try:
        with Warehouse(settings.db_path, lock_timeout_s=settings.lock_timeout_s) as wh, \
                FilesClient(settings) as client:
            todo = pending_inputs(wh, providers)
            for i, batch in enumerate(todo):
                if deadline is not None and i and time.monotonic() > deadline:
                    done.left = len(todo) - i
                    break
                _read_one(wh, client, settings, batch, tmp, run_id, store_bodies, done)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return done


def _read_one(wh: Warehouse, client: FilesClient, settings: Settings, batch: PendingInput,
              tmp: Path, run_id: str, store_bodies: bool, done: InputsRead) -> None:
    p = batch.provider
    dest = tmp / "input.jsonl"
    try:
        client.download_file(p, batch.input_file_id, dest)
    except GatewayError as e:
        message, transient = fault_of(e, settings)
        store_inputs(wh, p, batch.batch_id, [], state="retry" if transient else "unavailable",
                     lines=0, rejected=0, error=message, status=e.status, at=now_utc(),
                     run_id=run_id)
        (done.retry if transient else done.unavailable)[p] += 1
        done.reasons[p] = message[:120]
        return
    parts: list[str] = []
    part: list[InputRequest] = []
    lines = rejected = 0

    def flush() -> None:
        if part:
            path = wh.stage_path("requests")
            frame = request_rows(p, batch.batch_id, part, store_body=store_bodies)
            frame.with_columns(pl.lit(run_id, pl.String).alias("run_id")).write_parquet(
                path, compression="lz4", statistics=False)
            parts.append(path)
            part.clear()

    for i, raw in enumerate(split_lines(read_chunks(dest))):
        try:
            part.append(parse_input_line(p, raw, i, batch_model=batch.model,
                                         batch_endpoint=batch.endpoint))
            lines += 1
        except InputLineError:
            rejected += 1
        if len(part) >= PART_REQUESTS:
            flush()
    flush()
    dest.unlink(missing_ok=True)
    try:
        store_inputs(wh, p, batch.batch_id, parts, state="loaded", lines=lines,
                     rejected=rejected, error=None, status=None, at=now_utc(), run_id=run_id)
    finally:
        for f in parts:
            Path(f).unlink(missing_ok=True)
    done.batches[p] += 1
    done.requests[p] += lines
