"""The prices a run costs its result lines with: the user's file, then the shipped table.

``load_prices`` reads them (a file that cannot be read is one line); ``PriceCache`` holds the
run's table so that it is built once and stored by the run's first load that commits.
"""

from __future__ import annotations

import threading
from pathlib import Path

import polars as pl

from batchlake.common.errors import ConfigError
from batchlake.common.settings import Settings
from batchlake.transforms.prices import parse_price_csv, price_table


def load_prices(settings: Settings) -> pl.DataFrame:
    """The prices in force: the user's file (``prices``) first, then the shipped table
    (unless ``prices_only``). A file that cannot be read is one line."""
    file_prices = None
    if settings.prices:
        path = Path(settings.prices)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as e:
            raise ConfigError(f"cannot read the prices file {settings.prices} ({e.strerror}); "
                              "pass --prices FILE or set BATCHLAKE_PRICES") from None
        except UnicodeDecodeError:
            raise ConfigError(f"prices file {settings.prices} is not UTF-8 text") from None
        file_prices = parse_price_csv(text, f"file {path.name}")
    elif settings.prices_only:
        raise ConfigError("prices_only needs a prices file: pass --prices FILE")
    return price_table(file_prices, prices_only=settings.prices_only)


class PriceCache:
    """The run's price table, built once when the first results are loaded. The stored
    ``prices`` table is replaced by the first load of the run that commits: the warehouse
    asks ``unstored`` inside its transaction (under its lock) and calls ``stored`` after the
    commit, so no load prices its lines before the table is there."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._table: pl.DataFrame | None = None
        self._stored = False

    def check(self) -> None:
        """Read a prices file now, so that a bad one is one line before any work is done
        (the table is kept for the run's first load)."""
        if self.settings.prices or self.settings.prices_only:
            with self._lock:
                if self._table is None:
                    self._table = load_prices(self.settings)

    def unstored(self) -> pl.DataFrame | None:
        """The table to store with this load, or None once a load has stored it."""
        with self._lock:
            if self._stored:
                return None
            if self._table is None:
                self._table = load_prices(self.settings)
            return self._table

    def stored(self) -> None:
        with self._lock:
            self._stored = True
