"""Reports over the views: frames for code, rich tables for people, JSON, self-contained HTML."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb
import polars as pl

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


def _filters(since: timedelta | None, provider: str | None, alias: str = ""
             ) -> tuple[str, list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    a = f"{alias}." if alias else ""
    if since is not None:
        where.append(f"{a}created_at >= ?")
        params.append(datetime.now(UTC) - since)
    if provider:
        where.append(f"{a}provider = ?")
        params.append(provider)
    return (" WHERE " + " AND ".join(where)) if where else "", params


def status_by_provider(con: duckdb.DuckDBPyConnection, since: timedelta | None = None,
                       provider: str | None = None) -> pl.DataFrame:
    w, p = _filters(since, provider)
    return query_frame(con,
        f"SELECT provider, status_norm, count(*) AS batches FROM batches{w} "
        "GROUP BY ALL ORDER BY provider, batches DESC", p)


def summary(con: duckdb.DuckDBPyConnection, since: timedelta | None = None,
            provider: str | None = None) -> pl.DataFrame:
    w, p = _filters(since, provider)
    return query_frame(con,
        "SELECT provider, count(*) AS batches, "
        "count(*) FILTER (WHERE status_norm = 'completed') AS completed, "
        "count(*) FILTER (WHERE status_norm = 'failed') AS failed, "
        "count(*) FILTER (WHERE status_norm IN ('expired', 'cancelled')) AS expired_or_cancelled, "
        "count(*) FILTER (WHERE NOT is_terminal) AS in_flight, "
        # Sums stay HUGEINT (int64 counts can overflow an int64 sum); rates are DOUBLE.
        "sum(request_total) AS requests, "
        "round(CAST(sum(request_completed) AS DOUBLE) / nullif(CAST(sum(request_completed) "
        "AS DOUBLE) + sum(request_failed), 0), 4) AS success_rate, "
        "round(count(*) FILTER (WHERE cache_hit) / nullif(count(cache_hit), 0), 4) "
        "AS cache_hit_rate "
        f"FROM batches{w} GROUP BY provider ORDER BY provider", p)


def durations(con: duckdb.DuckDBPyConnection, since: timedelta | None = None,
              provider: str | None = None) -> pl.DataFrame:
    w, p = _filters(since, provider)
    return query_frame(con,
        "SELECT provider, count(total_s) AS finished, "
        "round(quantile_cont(queue_s, 0.5)) AS queue_p50_s, "
        "round(quantile_cont(processing_s, 0.5)) AS processing_p50_s, "
        "round(quantile_cont(processing_s, 0.9)) AS processing_p90_s, "
        "round(quantile_cont(total_s, 0.5)) AS total_p50_s, "
        "round(quantile_cont(total_s, 0.99)) AS total_p99_s "
        f"FROM batches{w} GROUP BY provider ORDER BY provider", p)


def top_errors(con: duckdb.DuckDBPyConnection, since: timedelta | None = None,
               provider: str | None = None, limit: int = 10) -> pl.DataFrame:
    w, p = _filters(since, provider, "b")
    return query_frame(con,
        "SELECT e.provider, coalesce(e.code, '(none)') AS code, count(*) AS errors, "
        "count(DISTINCT e.batch_id) AS batches, mode(e.message) AS top_message "
        "FROM batch_errors e JOIN batches b USING (provider, batch_id)"
        f"{w} GROUP BY ALL ORDER BY errors DESC, code LIMIT {int(limit)}", p)


def cache(con: duckdb.DuckDBPyConnection, since: timedelta | None = None,
          provider: str | None = None) -> pl.DataFrame:
    w, p = _filters(since, provider)
    w = w + (" AND " if w else " WHERE ") + "cache_hit IS NOT NULL"
    return query_frame(con,
        "SELECT provider, CASE WHEN cache_hit THEN coalesce(cache_hit_type, '(unknown)') "
        "ELSE 'miss' END AS hit_type, count(*) AS batches, "
        "coalesce(sum(cache_input_tokens) FILTER (WHERE cache_hit), 0) "
        "AS tokens_from_cache "
        f"FROM batches{w} GROUP BY ALL ORDER BY provider, hit_type", p)


def overdue(con: duckdb.DuckDBPyConnection, provider: str | None = None,
            older_than: timedelta | None = None) -> pl.DataFrame:
    """Open batches past due, plus (with ``older_than``) open ones unchanged that long."""
    params: list[Any] = []
    cond = "least(deadline_at, expires_at) < now()"
    if older_than is not None:
        cond = f"({cond} OR last_changed_at < ?)"
        params.append(datetime.now(UTC) - older_than)
    if provider:
        cond += " AND provider = ?"
        params.append(provider)
    return query_frame(con,
        "SELECT provider, batch_id, status_norm AS status, model_requested AS model, "
        "least(deadline_at, expires_at) AS due_at, "
        "greatest(date_diff('second', least(deadline_at, expires_at), now()), 0) AS late_s, "
        "request_completed AS done, request_total AS total, last_changed_at "
        f"FROM batches WHERE NOT is_terminal AND {cond} "
        "ORDER BY late_s DESC, provider, batch_id", params)


def costs(con: duckdb.DuckDBPyConnection, since: timedelta | None = None,
          provider: str | None = None) -> pl.DataFrame:
    """Cost per provider from the batches' results (batches created in the window)."""
    w, p = _filters(since, provider, "c")
    return query_frame(con,
        "SELECT c.provider, count(*) AS batches, sum(c.requests) AS requests, "
        "sum(c.succeeded) AS succeeded, sum(c.errored + c.expired + c.canceled) AS failed, "
        "round(sum(c.cost_usd), 4) AS cost_usd, round(sum(c.list_cost_usd), 4) AS list_cost_usd, "
        "round(sum(c.saved_usd), 4) AS saved_usd, sum(c.unpriced_requests) AS unpriced "
        f"FROM v_batch_costs c{w} GROUP BY c.provider ORDER BY c.provider", p)


def request_errors(con: duckdb.DuckDBPyConnection, since: timedelta | None = None,
                   provider: str | None = None, limit: int = 10) -> pl.DataFrame:
    """The most frequent request error codes across the batches' results."""
    w, p = _filters(since, provider, "b")
    cond = (w + " AND " if w else " WHERE ") + "r.outcome <> 'succeeded'"
    return query_frame(con,
        "SELECT r.provider, r.outcome, coalesce(r.error_code, '(none)') AS error_code, "
        "count(*) AS requests, count(DISTINCT r.batch_id) AS batches, "
        "mode(r.error_message) AS top_message "
        "FROM batch_results r JOIN batches b USING (provider, batch_id)"
        f"{cond} GROUP BY ALL ORDER BY requests DESC, error_code LIMIT {int(limit)}", p)


def unpriced(con: duckdb.DuckDBPyConnection, provider: str | None = None) -> pl.DataFrame:
    where = " WHERE provider = ?" if provider else ""
    return query_frame(con,
        "SELECT provider, model, unpriced_reason, requests, input_tokens, output_tokens "
        f"FROM v_unpriced_models{where} ORDER BY requests DESC LIMIT 10",
        [provider] if provider else None)


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
        "request_errors": request_errors(con, since, provider),
        "unpriced": unpriced(con, provider),
        "results_backlog": results_backlog(con, provider),
        "top_errors": top_errors(con, since, provider),
        "cache": cache(con, since, provider),
        "overdue": overdue(con, provider),
    }


def to_jsonable(sections: dict[str, pl.DataFrame]) -> dict[str, list[dict[str, Any]]]:
    def fix(v: Any) -> Any:
        if isinstance(v, datetime):
            return v.isoformat()
        if isinstance(v, Decimal):  # HUGEINT sums: exact integers in JSON
            return int(v) if v == v.to_integral_value() else float(v)
        return v

    return {k: [{c: fix(v) for c, v in row.items()} for row in df.to_dicts()]
            for k, df in sections.items()}


# -- HTML ----------------------------------------------------------------------------------
_COLORS = {"completed": "#2e7d32", "failed": "#c62828", "expired": "#8d6e63",
           "cancelled": "#757575", "in_progress": "#1565c0", "validating": "#90caf9",
           "finalizing": "#42a5f5", "cancelling": "#bdbdbd", "deleted": "#424242",
           "unknown": "#ff9800"}


def _table_html(df: pl.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in df.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in r)
        + "</tr>" for r in df.iter_rows())
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _status_chart_svg(df: pl.DataFrame) -> str:
    """Stacked horizontal bars: batches per provider by status (inline SVG, no JS)."""
    providers = df.get_column("provider").unique(maintain_order=True).to_list()
    totals = {p: int(df.filter(pl.col("provider") == p)["batches"].sum()) for p in providers}
    top = max(totals.values(), default=1) or 1
    bar_h, width, left = 26, 560, 90
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="batches by '
             f'provider and status" width="{left + width + 20}" '
             f'height="{bar_h * len(providers) + 40}">']
    for i, p in enumerate(providers):
        y = 10 + i * bar_h
        parts.append(f'<text x="0" y="{y + 17}" font-size="13">{html.escape(p)}</text>')
        x = float(left)
        for row in df.filter(pl.col("provider") == p).iter_rows(named=True):
            w = width * row["batches"] / top
            color = _COLORS.get(row["status_norm"], "#999")
            parts.append(f'<rect class="mark" x="{x:.1f}" y="{y}" width="{w:.1f}" '
                         f'height="{bar_h - 6}" fill="{color}"><title>'
                         f'{html.escape(row["status_norm"])}: {row["batches"]}</title></rect>')
            x += w
    legend_y = 10 + len(providers) * bar_h + 18
    lx = left
    for name, color in list(_COLORS.items())[:6]:
        parts.append(f'<rect x="{lx}" y="{legend_y - 10}" width="10" height="10" '
                     f'fill="{color}"/><text x="{lx + 14}" y="{legend_y}" font-size="11">'
                     f'{name}</text>')
        lx += 90
    parts.append("</svg>")
    return "".join(parts)


def _bars_svg(df: pl.DataFrame, label: str, series: list[tuple[str, str, str]], unit: str,
              aria: str) -> str:
    """Grouped horizontal bars: one group per ``label`` row, one bar per series
    (column, legend name, colour); NULLs draw no bar. Inline SVG, no script."""
    rows = df.to_dicts()
    values = [float(r[c]) for r in rows for c, _, _ in series if r.get(c) is not None]
    top = max(values, default=0.0) or 1.0
    bar_h, width, left = 12, 520, 110
    group_h = bar_h * len(series) + 10
    height = group_h * len(rows) + 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{aria}" '
             f'class="chart" width="{left + width + 120}" height="{height}">']
    for i, r in enumerate(rows):
        y = 10 + i * group_h
        parts.append(f'<text x="0" y="{y + bar_h}" font-size="13">'
                     f'{html.escape(str(r[label]))}</text>')
        for k, (col, name, color) in enumerate(series):
            v = r.get(col)
            if v is None:
                continue
            w = max(1.0, width * float(v) / top)
            by = y + k * bar_h
            parts.append(f'<rect class="mark" x="{left}" y="{by}" width="{w:.1f}" '
                         f'height="{bar_h - 2}" fill="{color}"><title>{html.escape(name)}: '
                         f'{float(v):,.2f} {unit}</title></rect>')
            parts.append(f'<text x="{left + w + 4:.1f}" y="{by + bar_h - 3}" font-size="10">'
                         f'{float(v):,.2f}</text>')
    ly = 10 + len(rows) * group_h + 14
    for k, (_, name, color) in enumerate(series):
        x = left + k * 170
        parts.append(f'<rect x="{x}" y="{ly - 10}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{x + 14}" y="{ly}" font-size="11">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def to_html(sections: dict[str, pl.DataFrame], status: pl.DataFrame, title: str) -> str:
    body = [f"<h1>{html.escape(title)}</h1>",
            f"<p>Generated {datetime.now(UTC):%Y-%m-%d %H:%M UTC}</p>",
            "<h2>Batches by provider and status</h2>", _status_chart_svg(status)]
    hours = sections["durations"].select(
        "provider", *[(pl.col(c) / 3600).alias(c) for c in
                      ("queue_p50_s", "processing_p50_s", "total_p50_s", "total_p99_s")])
    body += ["<h2>Durations by provider (hours)</h2>", _bars_svg(
        hours, "provider", [("queue_p50_s", "queue p50", "#90caf9"),
                            ("processing_p50_s", "processing p50", "#1565c0"),
                            ("total_p50_s", "total p50", "#2e7d32"),
                            ("total_p99_s", "total p99", "#8d6e63")], "h",
        "durations by provider")]
    cost = sections.get("costs")
    if cost is not None and cost.height:
        body += ["<h2>Cost by provider (USD)</h2>", _bars_svg(
            cost, "provider", [("cost_usd", "cost at batch rates", "#2e7d32"),
                               ("list_cost_usd", "at list prices", "#bdbdbd")], "USD",
            "cost by provider")]
    for name, df in sections.items():
        body.append(f"<h2 id='{name}'>{name.replace('_', ' ').title()}</h2>")
        body.append(_table_html(df) if df.height else "<p>None.</p>")
    style = ("body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
             "table{border-collapse:collapse;margin-bottom:1.5em;font-size:13px}"
             "th,td{border:1px solid #ddd;padding:4px 8px;text-align:left}"
             "th{background:#f5f5f5}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{style}</style></head><body>{''.join(body)}</body></html>")
