"""What the command line prints: tables (rich), CSV and JSON of frames, progress bars on a
terminal, and the report's sections. Commands compute with batchlake.commands and hand the
answer here; nothing here reads the database or the gateway."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import polars as pl
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from batchlake.common import ConfigError
from batchlake.json_values import jsonable, plain

if TYPE_CHECKING:
    from batchlake.commands import Report, ResultsStatus
    from batchlake.reconciling import Reconciled
    from batchlake.retrying import RetryReport
    from batchlake.run import SyncReport

# Wide when piped: a log file or CI output should not fold every column.
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


def print_frame(df: pl.DataFrame, fmt: str = "table", title: str | None = None) -> None:
    if fmt == "json":
        out.print_json(json.dumps(jsonable(df), default=str))
    elif fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(df.columns)
        w.writerows([plain(v) for v in row] for row in df.iter_rows())
        sys.stdout.write(buf.getvalue())
    elif fmt == "table":
        t = Table(title=title, title_justify="left", header_style="bold")
        for c in df.columns:
            t.add_column(c, overflow="fold")
        for row in df.iter_rows():
            t.add_row(*("" if v is None else _cell(v) for v in row))
        out.print(t)
    else:
        raise ConfigError(f"unknown format {fmt!r}; use table, csv or json")


# A table is read by a person: a longer value (a metadata value of a megabyte) is cut here,
# not folded over thousands of lines; csv and json keep every value whole.
TABLE_CELL_CHARS = 1_000


def _cell(v: Any) -> str:
    v = plain(v)
    if isinstance(v, datetime):
        return f"{v:%Y-%m-%d %H:%M:%S}"
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1 else f"{v:,.1f}"
    text = str(v)
    if len(text) > TABLE_CELL_CHARS:
        return (f"{text[:TABLE_CELL_CHARS]}… ({len(text) - TABLE_CELL_CHARS:,} more "
                "characters: --format csv or json has the whole value)")
    return text


@contextmanager
def listing_progress(enabled: bool) -> Iterator[Any]:
    """A per-provider progress line on a terminal; silent otherwise."""
    if not enabled:
        yield None
        return
    with Progress(TextColumn("{task.description:<10}"), BarColumn(bar_width=None),
                  TextColumn("{task.fields[pages]} pages, {task.completed:,.0f} objects"),
                  TimeElapsedColumn(), console=err, transient=False) as bar:
        tasks: dict[str, Any] = {}

        def update(provider: str, pages: int, fetched: int) -> None:
            if provider not in tasks:
                tasks[provider] = bar.add_task(provider, total=None, pages=0)
            bar.update(tasks[provider], completed=fetched, pages=pages)

        yield update


# One line per provider, 91 columns: a person reads a sync on a 100-column terminal.
_SYNC_COLUMNS = (("provider", 11, "<"), ("status", 8, "<"), ("listed", 9, ">"),
                 ("new", 8, ">"), ("changed", 9, ">"), ("rejected", 9, ">"),
                 ("results", 9, ">"), ("lines", 10, ">"), ("backlog", 9, ">"),
                 ("seconds", 9, ">"))


def sync_lines(rep: SyncReport, seconds: float) -> tuple[list[str], list[str]]:
    """What ``batchlake sync`` prints: (lines for stdout, lines for stderr). A header and a
    line per provider (listed, new, changed, rejected, results batches and lines, backlog
    left, seconds), a line per warning, a line for the run; each failure a line on stderr."""
    def row(values: list[str]) -> str:
        return "".join(f"{v[:w - 1]:{a}{w - 1}} " if a == "<" else f"{v:{a}{w}}"
                       for v, (_, w, a) in zip(values, _SYNC_COLUMNS, strict=True)).rstrip()

    lines = [row([name for name, _, _ in _SYNC_COLUMNS])]
    for r in rep.results:
        c = r.counts
        lines.append(row([r.provider, r.status, f"{r.fetched:,}", f"{c.inserted:,}",
                          f"{c.updated:,}", f"{c.rejected:,}", f"{r.results_batches:,}",
                          f"{r.result_lines:,}", f"{r.results_backlog:,}",
                          f"{r.seconds:,.1f}"]))
    lines += [f"  {r.provider}: {w}" for r in rep.results for w in r.warnings]
    ok = len(rep.results) - len(rep.failed)
    # the run in a line that fits too: the table above has the totals of the rest
    lines.append(
        f"run {rep.run_id}: {ok}/{len(rep.results)} providers ok; "
        f"{sum(r.counts.inserted for r in rep.results):,} new, "
        f"{sum(r.counts.updated for r in rep.results):,} changed, "
        f"results backlog {sum(r.results_backlog for r in rep.results):,}; {seconds:,.1f} s")
    if rep.published:
        lines.append(f"published {rep.published}")
    return lines, [f"{r.provider} failed: {r.error}" for r in rep.failed]


def print_sync_report(rep: SyncReport, seconds: float) -> None:
    lines, failures = sync_lines(rep, seconds)
    for line in lines:
        out.print(line, highlight=False, markup=False, soft_wrap=True)
    for line in failures:
        err.print(line, style="red", highlight=False, markup=False, soft_wrap=True)


def print_results_run(rep: SyncReport, fmt: str) -> None:
    """``batchlake results``: per provider what was read, and each warning on a line."""
    df = pl.DataFrame([{k: r.as_row()[k] for k in (
        "provider", "status", "results_batches", "result_lines", "results_failed",
        "results_backlog", "seconds", "error")} for r in rep.results])
    print_frame(df, fmt, title=f"results run {rep.run_id}")
    for r in rep.results:
        for w in r.warnings:
            err.print(f"{r.provider}: {w}", highlight=False, markup=False, soft_wrap=True)


def print_results_status(status: ResultsStatus, fmt: str) -> None:
    """``batchlake results --status``: per provider, then the failures grouped by (state,
    reason) with a count and one example batch; JSON lists every failed batch as well."""
    if fmt == "json":
        print_json({"by_provider": status.by_provider, "failures": status.failures,
                    "batches": status.failing})
        return
    print_frame(status.by_provider, fmt, title="results by provider")
    print_frame(status.failures, fmt,
                title="batches whose results failed, by reason (--format json lists each)")


def print_report(rep: Report, fmt: str) -> None:
    if fmt == "json":
        print_json(rep.sections)  # print_json makes the frames JSON values (as to_json does)
        return
    for name, df in rep.sections.items():
        print_frame(df.head(20) if name == "overdue" else df, fmt,
                    title=name.replace("_", " ").title()
                    + (f" (20 of {df.height})" if name == "overdue" and df.height > 20 else ""))


def check_format(fmt: str, allowed: tuple[str, ...] = ("table", "csv", "json")) -> None:
    if fmt not in allowed:
        raise ConfigError(f"unknown format {fmt!r}; use {', '.join(allowed[:-1])} or "
                          f"{allowed[-1]}")


def on_wait(message: str) -> None:
    """Said once on stderr when a command waits for a sync that holds the database."""
    err.print(f"waiting: {message}", highlight=False)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(jsonable(value), default=str, indent=1) + "\n")


@contextmanager
def results_progress(enabled: bool) -> Iterator[Any]:
    """A progress bar over the backlog on a terminal; silent otherwise."""
    if not enabled:
        yield None
        return
    with Progress(TextColumn("results"), BarColumn(bar_width=None),
                  TextColumn("{task.completed:,.0f}/{task.total:,.0f} batches"),
                  TimeElapsedColumn(), console=err, transient=False) as bar:
        task = bar.add_task("results", total=0)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=max(total, done))

        yield update




# -- batchlake retry -----------------------------------------------------------------------
def print_retry_event(message: str) -> None:
    """Each upload and batch a ``retry --submit`` makes, as it happens."""
    out.print(message, highlight=False, markup=False, soft_wrap=True)


RETRY_ROWS = 10  # source batches and files listed in the text summary (JSON lists all)


def _size(n: int) -> str:
    return f"{n / 1e6:,.1f} MB" if n >= 100_000 else f"{n / 1e3:,.1f} KB"


def print_retry_report(rep: RetryReport, fmt: str) -> None:
    """``batchlake retry``: the requests by reason and by source batch, the files, the
    estimated cost (said to be an estimate, and how it was made), one line per thing left
    out, and whether anything was written to the gateway."""
    if fmt == "json":
        print_json(rep.as_json())
        return
    def say(text: str) -> None:
        out.print(text, highlight=False, markup=False, soft_wrap=True)

    if not rep.total:
        say(f"nothing to retry for {rep.provider}: every request of the selected batches "
            "succeeded, or is left out below")
    else:
        say(f"retry {rep.run_id}: {rep.total:,} {rep.provider} requests that did not succeed, "
            f"in {len(rep.files)} file(s) in {rep.out_dir}")
        print_frame(rep.by_reason(), "table", title="by reason")
        sources = rep.by_source()
        shown = sources.head(RETRY_ROWS)
        print_frame(shown, "table", title="by source batch" + (
            f" ({shown.height} of {sources.height}; --format json lists each)"
            if sources.height > shown.height else ""))
        for f in rep.files[:RETRY_ROWS]:
            made = f" -> batch {f.retry_batch_id}" if f.retry_batch_id else ""
            say(f"  {f.name}: {f.requests:,} requests, {_size(f.bytes)}{made}")
        if len(rep.files) > RETRY_ROWS:
            say(f"  … and {len(rep.files) - RETRY_ROWS} more files (retry-manifest.json in "
                f"{rep.out_dir} names each)")
        cost = rep.estimated_cost_usd
        priced = ("no stored cost to estimate from" if cost is None else
                  f"about ${cost:,.4f} at batch rates")
        say(f"estimated cost: {priced} (an estimate: each request at the mean cost of a "
            "succeeded request of its source batch and model, else of its batch, else of "
            f"its model across batches; {rep.unpriced:,} requests had nothing to go by)")
    for note in rep.notes:
        err.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
    if rep.total and not rep.submitted:
        say("nothing was written to the gateway: submit with --submit, or upload the files "
            "yourself")


RECONCILE_COLUMNS = ("provider", "batch_id", "batchlake_cost", "gateway_cost", "difference",
                     "status", "reason")


def _usd_cell(value: float | None) -> str:
    return "" if value is None else f"{value:,.6f}"


def print_reconcile(rep: Reconciled, fmt: str) -> None:
    """``batchlake reconcile``: a line per batch (differences first; USD to 6 places), JSON
    records with every field; warnings and the run's summary on stderr."""
    if fmt == "json":
        print_json(rep.records)
    else:
        df = rep.records.select(RECONCILE_COLUMNS)
        if fmt == "table":
            df = df.with_columns(pl.col(c).map_elements(_usd_cell, return_dtype=pl.String)
                                 for c in ("batchlake_cost", "gateway_cost", "difference"))
        print_frame(df, fmt, title="each batch's cost beside the gateway's (difference = "
                    "gateway - batchlake, USD)")
    for w in rep.warnings:
        err.print(f"warning: {w}", highlight=False, markup=False, soft_wrap=True)
    err.print(rep.summary(), highlight=False, markup=False, soft_wrap=True)
