"""The report's sections as polars frames (each a query in sql/report/), and as JSON.

batchlake/report_html.py draws them as a page; the CLI prints them as tables."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import polars as pl

from batchlake import sql
from batchlake.common import ConfigError
from batchlake.warehouse import query_frame

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.I)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """'7d', '2h', '30m', '45s', '1w' -> timedelta."""
    m = _DURATION.match(text or "")
    if not m:
        raise ConfigError(f"duration {text!r} is not like 30m, 2h, 7d or 1w")
    return timedelta(seconds=float(m.group(1)) * _UNIT_S[m.group(2).lower()])


def _section(con: duckdb.DuckDBPyConnection, name: str, **params: Any) -> pl.DataFrame:
    """The frame of ``sql/report/<name>.sql``, given the named parameters it uses."""
    text = sql.read(f"report/{name}.sql")
    return query_frame(con, text, sql.used_params(text, params))


def _since(window: timedelta | None) -> datetime | None:
    return None if window is None else datetime.now(UTC) - window


def status_by_provider(con: duckdb.DuckDBPyConnection, since: timedelta | None = None,
                       provider: str | None = None) -> pl.DataFrame:
    return _section(con, "status_by_provider", since=_since(since), provider=provider)


def summary(con: duckdb.DuckDBPyConnection, since: timedelta | None = None,
            provider: str | None = None) -> pl.DataFrame:
    return _section(con, "summary", since=_since(since), provider=provider)


def durations(con: duckdb.DuckDBPyConnection, since: timedelta | None = None,
              provider: str | None = None) -> pl.DataFrame:
    return _section(con, "durations", since=_since(since), provider=provider)


def top_errors(con: duckdb.DuckDBPyConnection, since: timedelta | None = None,
               provider: str | None = None, limit: int = 10) -> pl.DataFrame:
    return _section(con, "top_errors", since=_since(since), provider=provider, limit=limit)


def cache(con: duckdb.DuckDBPyConnection, since: timedelta | None = None,
          provider: str | None = None) -> pl.DataFrame:
    return _section(con, "cache", since=_since(since), provider=provider)


def overdue(con: duckdb.DuckDBPyConnection, provider: str | None = None,
            older_than: timedelta | None = None) -> pl.DataFrame:
    """Open batches past due, plus (with ``older_than``) open ones unchanged that long."""
    return _section(con, "overdue", provider=provider, unchanged_since=_since(older_than))


def costs(con: duckdb.DuckDBPyConnection, since: timedelta | None = None,
          provider: str | None = None) -> pl.DataFrame:
    """Cost per provider from the batches' results (batches created in the window)."""
    return _section(con, "costs", since=_since(since), provider=provider)


def cost_reconcile(con: duckdb.DuckDBPyConnection, since: timedelta | None = None,
                   provider: str | None = None) -> pl.DataFrame:
    """The gateway's bill beside batchlake's per provider and day (v_cost_reconcile, filled
    by batchlake reconcile): batches checked, matched, differing and by how much, unpriced or
    missing at the gateway, unpriced in batchlake."""
    return _section(con, "cost_reconcile", since=_since(since), provider=provider)


def request_errors(con: duckdb.DuckDBPyConnection, since: timedelta | None = None,
                   provider: str | None = None, limit: int = 10) -> pl.DataFrame:
    """The most frequent request error codes across the batches' results."""
    return _section(con, "request_errors", since=_since(since), provider=provider,
                    limit=limit)


def unpriced(con: duckdb.DuckDBPyConnection, provider: str | None = None) -> pl.DataFrame:
    return _section(con, "unpriced", provider=provider)


def results_backlog(con: duckdb.DuckDBPyConnection, provider: str | None = None
                    ) -> pl.DataFrame:
    """Where finished batches' results stand, per provider: loaded, backlog, retries,
    unavailable (warehouse/results_store.py, as ``batchlake results --status`` shows it)."""
    from batchlake.warehouse import results_backlog_by_provider

    df = results_backlog_by_provider(con)
    return df.filter(pl.col("provider") == provider) if provider else df


def build(con: duckdb.DuckDBPyConnection, since: timedelta | None = None,
          provider: str | None = None) -> dict[str, pl.DataFrame]:
    """All report sections, in display order."""
    return {
        "summary": summary(con, since, provider),
        "durations": durations(con, since, provider),
        "costs": costs(con, since, provider),
        "cost_reconcile": cost_reconcile(con, since, provider),
        "request_errors": request_errors(con, since, provider),
        "unpriced": unpriced(con, provider),
        "results_backlog": results_backlog(con, provider),
        "top_errors": top_errors(con, since, provider),
        "cache": cache(con, since, provider),
        "overdue": overdue(con, provider),
    }


