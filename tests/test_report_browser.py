"""The HTML report in a real browser (headless Chromium): it renders with no console errors,
its charts have their marks, it asks the network for nothing, and it is not blank."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from batchlake.pipeline import sync
from batchlake.simulator import SimGateway
from tests.browser import CHROMIUM, png_is_blank, visit
from tests.conftest import run_cli, settings_for

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (make test and .ci/run install "
    "Debian's chromium with apt-get; elsewhere: apt-get install chromium)")

MARKS = {name: f"document.querySelectorAll('svg[aria-label=\"{label}\"] rect.mark').length"
         for name, label in (("status", "batches by provider and status"),
                             ("durations", "durations by provider"),
                             ("cost", "cost by provider"))}


def test_the_report_page_renders_offline_with_every_chart_drawn(tmp_path: Path) -> None:
    db = str(tmp_path / "lake.duckdb")
    with SimGateway(400, seed=7) as gw:
        sync(settings_for(gw, db))
    page = tmp_path / "report.html"
    res = run_cli("report", "--db", db, "--html", str(page))
    assert res.returncode == 0, res.stderr
    seen = visit(page.as_uri(), {**MARKS, "h2": "[...document.querySelectorAll('h2')]"
                                 ".map(h => h.textContent)",
                                 "width": "document.body.scrollWidth"})
    assert seen.console_errors == []
    # offline: the page itself is the only thing it loads
    assert all(u.startswith(("file://", "data:", "about:")) for u in seen.requests), \
        seen.requests
    assert seen.values["status"] >= 5 and seen.values["durations"] >= 5
    assert seen.values["cost"] >= 3  # providers with priced lines: batch rates and list prices
    assert {"Costs", "Request Errors", "Durations"} <= set(seen.values["h2"])
    assert not png_is_blank(seen.screenshot)
    out = os.environ.get("REPORT_SCREENSHOT")  # README's picture: set it to regenerate
    if out:
        Path(out).write_bytes(seen.screenshot)
