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
from decimal import Decimal
from typing import Any

import polars as pl
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from batchlake import report_frames as rpt
from batchlake.common import ConfigError

# Wide when piped: a log file or CI output should not fold every column.
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


def print_frame(df: pl.DataFrame, fmt: str = "table", title: str | None = None) -> None:
    if fmt == "json":
        out.print_json(json.dumps(rpt.to_jsonable({"rows": df})["rows"], default=str))
    elif fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(df.columns)
        w.writerows([_plain(v) for v in row] for row in df.iter_rows())
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


def _plain(v: Any) -> Any:
    """HUGEINT sums arrive as Decimal(38, 0): shown (and written as JSON) as integers."""
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    return v


def _cell(v: Any) -> str:
    v = _plain(v)
    if isinstance(v, datetime):
        return f"{v:%Y-%m-%d %H:%M:%S}"
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1 else f"{v:,.1f}"
    return str(v)


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


def print_sync_report(rep: Any) -> None:
    df = pl.DataFrame([r.as_row() for r in rep.results])
    print_frame(df.drop("warnings") if df.get_column("warnings").str.len_chars().max() == 0
                else df, title=f"sync run {rep.run_id}")
    for r in rep.failed:
        err.print(f"[red]{r.provider} failed:[/red] {r.error}", highlight=False)


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


