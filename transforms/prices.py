"""Price tables (no I/O): a user's CSV text, and the shipped prices genai-prices resolves.

Rates are USD per 1M tokens. A price table has the columns ``provider, model, input, output,
cache_read, cache_write, batch_input, batch_output`` (empty = not given) plus ``rank`` (0: the
user's file, 1: the shipped table), ``source`` and ``price_model``; tiered rates are rows of
a second table (``price_tiers``). Lookup and cost rules live in ``sql/results_store/``
(docs/costs.md): every cost can be recomputed in SQL from the stored tables.

The shipped prices are ``genai-prices``' (pydantic's, MIT; its data ships inside the wheel,
nothing is downloaded), and so is the decision which model a name is priced as: each
(provider, model) a run meets is given to its own matcher (``find_provider_model``: exact
names, prefixes, ``contains``, regexes, per-provider rules, fallbacks such as Azure to
OpenAI), once, and what it resolved to is stored as a row of that exact name. Batch rates are
its ``processing: batch`` variants where the model has one (OpenAI, Google, Anthropic,
Mistral, Groq, xAI models); elsewhere (Bedrock, Azure) batch cost is 0.5 x standard, Bifrost's
own rule. Tiered rates (Gemini 2.5 Pro above 200k prompt tokens…) keep their tiers.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import polars as pl

from batchlake.common import ConfigError
from batchlake.transforms.schema import PRICE_TIERS, PRICES

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
_TIER_SCHEMA = PRICE_TIERS.polars_schema()
# genai-prices' price keys for batchlake's rate columns
_KEYS = {"input": "input_mtok", "output": "output_mtok", "cache_read": "cache_read_mtok",
         "cache_write": "cache_write_mtok"}
BATCH = {"processing": "batch"}  # genai-prices' price context of a batch request
_BATCH_COLUMNS = ("batch_input", "batch_output", "batch_cache_read", "batch_cache_write")


def _frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=_SCHEMA, orient="row") if rows else pl.DataFrame(
        schema=_SCHEMA)


def _tier_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=_TIER_SCHEMA, orient="row") if rows else pl.DataFrame(
        schema=_TIER_SCHEMA)


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
                               "source": source, "price_model": None,
                               "batch_cache_read": None, "batch_cache_write": None}
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


def _model_ref(provider: str, model: str) -> str:
    """The name genai-prices is asked for: a Gemini or Vertex resource name
    (``models/gemini-2.5-pro``, ``publishers/google/models/gemini-2.5-flash``,
    ``projects/p/locations/l/publishers/google/models/…``) without its resource path, which
    the matcher does not strip; every other name as the gateway sent it."""
    if provider in ("gemini", "vertex"):
        return _RESOURCE_PATH.sub("", model)
    return model


_RESOURCE_PATH = re.compile(r"^(?:.*/)?models/")


def _genai_rate(price: Any) -> tuple[float | None, list[tuple[int, float]]]:
    """A genai-prices rate as (base, [(tier start, rate)…]): a Decimal has no tiers."""
    if price is None:
        return None, []
    tiers = getattr(price, "tiers", None)
    if tiers is not None:
        return float(price.base), [(int(t.start), float(t.price)) for t in tiers]
    return (float(price), []) if isinstance(price, Decimal | int | float) else (None, [])


def _batch_overrides(provider: Any, model: Any, at: datetime) -> dict[str, Any]:
    """The rates the model's ``processing: batch`` variants set, as genai-prices' own
    calc_price applies them: only for a model of the provider itself (a fallback model, such
    as Azure's view of an OpenAI one, gets its standard price)."""
    if not any(m is model for m in provider.models):
        return {}
    out: dict[str, Any] = {}
    for variant in model.price_variants or ():
        if variant.constraint is not None and not variant.constraint.active(at):
            continue
        if any(BATCH.get(k) != v for k, v in variant.when.items()):
            continue
        for key, price in variant.prices.__dict__.items():
            if price is not None:
                out.setdefault(key, price)
    return out


@dataclass(frozen=True)
class ShippedPrices:
    """What genai-prices resolved a run's names to: a price row per name it prices (rank 1,
    the name as sent, ``price_model`` the model it chose) and their tiers."""

    prices: pl.DataFrame
    tiers: pl.DataFrame


def no_shipped_prices() -> ShippedPrices:
    """Empty shipped tables, with their schemas (no genai-prices import)."""
    return ShippedPrices(_frame([]), _tier_frame([]))


@functools.cache
def _genai_prices_source() -> str:
    """The shipped prices' source, once a process: the run resolves names one at a time, and
    each read of the package's metadata cost ~1 ms (25 ms a sync)."""
    from importlib.metadata import version

    return f"genai-prices {version('genai-prices')}"


def shipped_prices(names: Iterable[tuple[str, str]], today: date | None = None
                   ) -> ShippedPrices:
    """Resolve each (provider, model) with genai-prices' matcher and take its prices in force
    ``today``; a name it cannot price gets no row (its lines say why: no price)."""
    from genai_prices import data_snapshot  # slow to import: only when results are priced

    at = datetime.combine(today or date.today(), time(12), UTC)
    snapshot = data_snapshot.get_snapshot()
    source = _genai_prices_source()
    rows: list[dict[str, Any]] = []
    tiers: list[dict[str, Any]] = []
    for provider, model in dict.fromkeys(names):
        try:
            found, info = snapshot.find_provider_model(
                _model_ref(provider, model), None, GENAI_PROVIDERS.get(provider, provider),
                None)
        except LookupError:
            continue
        standard = info.get_prices(at)
        batch = _batch_overrides(found, info, at)
        row: dict[str, Any] = {"rank": DEFAULT_RANK, "provider": provider, "model": model,
                               "source": f"{source} ({found.id})", "price_model": info.id,
                               **dict.fromkeys(_BATCH_COLUMNS)}
        steps: list[tuple[str, int, float]] = []
        rates = [(name, getattr(standard, key, None)) for name, key in _KEYS.items()]
        if batch:  # genai-prices' batch price: the variant's rates, the standard ones elsewhere
            rates += [(f"batch_{name}", batch.get(key, getattr(standard, key, None)))
                      for name, key in _KEYS.items()]
        for name, price in rates:
            row[name], tiered = _genai_rate(price)
            steps += [(name, start, value) for start, value in tiered]
        if row["input"] is None and row["output"] is None:
            continue  # priced per request, image or second only: not a token price
        rows.append(row)
        tiers += [{"rank": DEFAULT_RANK, "provider": provider, "model": model, "rate": name,
                   "start_tokens": start, "value": value} for name, start, value in steps]
    return ShippedPrices(_frame(rows), _tier_frame(tiers))
