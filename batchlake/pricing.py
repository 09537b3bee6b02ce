"""The prices a run costs its result lines with: the user's file, then the shipped table.

``load_prices`` reads the file (a file that cannot be read is one line). ``PriceCache`` holds
the run's prices: the file's rows, and the shipped prices of each (provider, model) the run's
lines name, resolved by genai-prices' matcher once per run (transforms/prices.py). The
warehouse asks it, inside each load's transaction, what to store for the names that load
brings (``for_load``) and tells it after the commit (``stored``), so that every line is priced
from stored rows and ``batchlake reprice`` and the views stay SQL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from batchlake.common import ConfigError, Settings
from batchlake.transforms import (
    ShippedPrices,
    no_shipped_prices,
    parse_price_csv,
    shipped_prices,
)

Name = tuple[str, str]  # (provider, model) as a line names it


def load_prices(settings: Settings) -> pl.DataFrame | None:
    """The prices file's rows (rank 0), or None without a file. A file that cannot be read is
    one line."""
    if settings.prices:
        path = Path(settings.prices)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as e:
            raise ConfigError(f"cannot read the prices file {settings.prices} ({e.strerror}); "
                              "pass --prices FILE or set BATCHLAKE_PRICES") from None
        except UnicodeDecodeError:
            raise ConfigError(f"prices file {settings.prices} is not UTF-8 text") from None
        return parse_price_csv(text, f"file {path.name}")
    if settings.prices_only:
        raise ConfigError("prices_only needs a prices file: pass --prices FILE")
    return None


@dataclass
class PriceUpdate:
    """What a load stores before pricing its lines: the whole price tables (``replace``: the
    run's first load) or the rows of names no load of the run has stored yet."""

    replace: bool
    prices: pl.DataFrame
    tiers: pl.DataFrame
    names: set[Name] = field(default_factory=set)


class PriceCache:
    """The run's prices (see the module). Thread-safe; a name is resolved once per run."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._file: pl.DataFrame | None = None
        self._file_read = False
        self._resolved: dict[Name, ShippedPrices] = {}
        self._stored: set[Name] | None = None  # None: nothing stored by this run yet

    def check(self) -> None:
        """Read a prices file now, so that a bad one is one line before any work is done."""
        with self._lock:
            self._file_rows()

    def _file_rows(self) -> pl.DataFrame | None:
        if not self._file_read:
            self._file = load_prices(self.settings)
            self._file_read = True
        return self._file

    def _shipped(self, names: Iterable[Name]) -> ShippedPrices:
        """The shipped rows of ``names``, each resolved once per run."""
        wanted = list(dict.fromkeys(names))
        if self.settings.prices_only:
            wanted = []
        for name in wanted:
            if name not in self._resolved:
                self._resolved[name] = shipped_prices([name])
        parts = [self._resolved[n] for n in wanted]
        empty = no_shipped_prices()
        return ShippedPrices(pl.concat([empty.prices, *(p.prices for p in parts)]),
                             pl.concat([empty.tiers, *(p.tiers for p in parts)]))

    def for_load(self, names: Iterable[Name], stored_names: Callable[[], Iterable[Name]],
                 *, replace: bool = False) -> PriceUpdate | None:
        """What to store before this load's lines are priced: at the run's first load (or
        with ``replace``), the whole tables, for the load's names and every name already
        stored (``stored_names``, read only then); later, the rows of new names, or None."""
        with self._lock:
            names = set(names)
            if self._stored is None or replace:
                everything = names | set(stored_names())
                shipped = self._shipped(sorted(everything))
                file_rows = self._file_rows()
                prices = shipped.prices if file_rows is None else pl.concat(
                    [file_rows, shipped.prices])
                return PriceUpdate(True, prices, shipped.tiers, everything)
            new = names - self._stored
            if not new:
                return None
            shipped = self._shipped(sorted(new))
            return PriceUpdate(False, shipped.prices, shipped.tiers, new)

    def stored(self, update: PriceUpdate) -> None:
        """``update`` was committed."""
        with self._lock:
            self._stored = set(update.names) if update.replace else (
                (self._stored or set()) | update.names)
