"""Price tables (no I/O): the shipped default from ``genai-prices`` and a user's CSV text.

Rates are USD per 1M tokens. A price table has the columns ``provider, model, input, output,
cache_read, cache_write, batch_input, batch_output`` (empty = not given) plus ``rank`` (0: the
user's file, 1: the shipped table) and ``source``. Lookup and cost rules live in
``sql/results/`` (docs/costs.md): every cost can be recomputed in SQL from the stored table.

``genai-prices`` (pydantic's, MIT) ships its data inside the wheel: nothing is downloaded.
It gives batch rates (its ``processing: batch`` variants) for OpenAI, Google, Anthropic,
Mistral, Groq and xAI models; none for AWS Bedrock or Azure, where batch cost falls back to
0.5 x standard, Bifrost's own rule.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal
from typing import Any

import polars as pl

from batchlake.common.errors import ConfigError
from batchlake.transforms.schema import PRICES

CSV_HEADER = ("provider", "model", "input", "output", "cache_read", "cache_write",
              "batch_input", "batch_output")
RATE_COLUMNS = CSV_HEADER[2:]
FILE_RANK, DEFAULT_RANK = 0, 1
# Bifrost's provider names -> genai-prices' provider ids (where they differ).
GENAI_PROVIDERS: dict[str, str] = {
    "openai": "openai", "azure": "azure", "anthropic": "anthropic", "gemini": "google",
    "vertex": "google", "bedrock": "aws", "mistral": "mistral", "groq": "groq",
    "xai": "x-ai", "cohere": "cohere", "deepseek": "deepseek", "cerebras": "cerebras",
    "fireworks": "fireworks", "together": "together", "perplexity": "perplexity",
}
_SCHEMA = PRICES.polars_schema()


def _frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=_SCHEMA, orient="row") if rows else pl.DataFrame(
        schema=_SCHEMA)


def parse_price_csv(text: str, source: str) -> pl.DataFrame:
    """A prices CSV (header ``provider,model,input,output,cache_read,cache_write,batch_input,
    batch_output``) as a price table of rank 0; a bad cell is one line naming it."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(h.strip().lower() for h in header) != CSV_HEADER:
        raise ConfigError(f"prices file {source}: the header must be {','.join(CSV_HEADER)}")
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for n, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(CSV_HEADER):
            raise ConfigError(f"prices file {source} line {n}: {len(cells)} cells, expected "
                              f"{len(CSV_HEADER)}")
        provider, model = cells[0].strip().lower(), cells[1].strip()
        if not provider or not model:
            raise ConfigError(f"prices file {source} line {n}: provider and model are required")
        if (provider, model) in seen:
            raise ConfigError(f"prices file {source} line {n}: {provider},{model} is listed "
                              "twice")
        seen.add((provider, model))
        row: dict[str, Any] = {"rank": FILE_RANK, "provider": provider, "model": model,
                               "source": source}
        for name, cell in zip(RATE_COLUMNS, cells[2:], strict=True):
            row[name] = _rate(cell, name, source, n)
        rows.append(row)
    return _frame(rows)


def _rate(cell: str, name: str, source: str, line: int) -> float | None:
    cell = cell.strip()
    if not cell:
        return None
    try:
        value = float(cell)
    except ValueError:
        raise ConfigError(f"prices file {source} line {line}: {name} {cell!r} is not a "
                          "number (USD per 1M tokens)") from None
    if not value >= 0 or value == float("inf"):
        raise ConfigError(f"prices file {source} line {line}: {name} {cell!r} must be a "
                          "finite rate of 0 or more")
    return value


def _base(v: Any) -> float | None:
    """A genai-prices rate (a Decimal, or tiers whose base is the rate below the first tier)."""
    if v is None:
        return None
    base = getattr(v, "base", v)
    return float(base) if isinstance(base, Decimal | int | float) else None


def _in_force(prices: Any, today: date) -> Any:
    """The model price in force today: the last one whose start date has passed."""
    if not isinstance(prices, list):
        return prices
    chosen = None
    for cp in prices:
        start = getattr(cp.constraint, "start_date", None)
        if cp.constraint is None or (start is not None and start <= today):
            chosen = cp.prices
    return chosen


def _batch_variant(model: Any, today: date) -> Any:
    chosen = None
    for v in model.price_variants or []:
        if v.when != {"processing": "batch"}:
            continue
        start = getattr(v.constraint, "start_date", None)
        if v.constraint is None or (start is not None and start <= today):
            chosen = v.prices
    return chosen


def _names(model: Any) -> list[str]:
    """The model's id, then every exact name its match rule lists."""
    names = [model.id]
    stack = [model.match]
    while stack:
        clause = stack.pop()
        if clause is None:
            continue
        stack.extend(getattr(clause, "or_", None) or [])
        equals = getattr(clause, "equals", None)
        if isinstance(equals, str):
            names.append(equals)
        prefix = getattr(clause, "starts_with", None)
        if isinstance(prefix, str) and prefix.rstrip("-") and not prefix.endswith("@"):
            # a name our lookup extends by '-…' (claude-3-5-haiku -> claude-3-5-haiku-2024…)
            names.append(prefix.rstrip("-"))
    return list(dict.fromkeys(names))


def default_prices(today: date | None = None) -> pl.DataFrame:
    """The shipped price table (rank 1), from the pinned genai-prices' own data."""
    from importlib.metadata import version

    from genai_prices import data  # ~0.15 s to import: only when results are priced

    day = today or date.today()
    source = f"genai-prices {version('genai-prices')}"
    by_id = {p.id: p for p in data.providers}
    rows: list[dict[str, Any]] = []
    for ours, theirs in GENAI_PROVIDERS.items():
        provider = by_id.get(theirs)
        if provider is None:
            continue
        seen: set[str] = set()
        for model in provider.models:
            price = _in_force(model.prices, day)
            if price is None:
                continue
            batch = _batch_variant(model, day)
            rates = {
                "input": _base(price.input_mtok), "output": _base(price.output_mtok),
                "cache_read": _base(price.cache_read_mtok),
                "cache_write": _base(price.cache_write_mtok),
                "batch_input": _base(batch.input_mtok) if batch is not None else None,
                "batch_output": _base(batch.output_mtok) if batch is not None else None,
            }
            if rates["input"] is None and rates["output"] is None:
                continue  # priced per request or per image only: not a token price
            for name in _names(model):
                if name in seen:
                    continue
                seen.add(name)
                rows.append({"rank": DEFAULT_RANK, "provider": ours, "model": name,
                             "source": source, **rates})
    return _frame(rows)


def price_table(file_prices: pl.DataFrame | None, *, prices_only: bool,
                today: date | None = None) -> pl.DataFrame:
    """The prices in force: the file's rows first (rank 0), then, unless ``prices_only``,
    the shipped table (rank 1)."""
    parts = [file_prices] if file_prices is not None else []
    if not prices_only:
        parts.append(default_prices(today))
    return pl.concat(parts) if parts else _frame([])
