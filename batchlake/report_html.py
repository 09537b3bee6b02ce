"""The report as one self-contained HTML page: its sections as tables and inline SVG charts
(no script, no external asset), for a browser or a CI artifact."""

from __future__ import annotations

import html
from datetime import UTC, datetime

import polars as pl

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
