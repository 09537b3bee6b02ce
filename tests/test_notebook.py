"""The notebook runs top to bottom against a demo database, so it never rots."""

from __future__ import annotations

import json
from pathlib import Path

from batchlake.pipeline import sync
from batchlake.simulator import SimGateway
from tests.conftest import settings_for
from tests.notebook_runner import run_notebook


def test_explore_notebook_executes_and_draws_every_chart(tmp_path: Path) -> None:
    db = str(tmp_path / "demo.duckdb")
    with SimGateway(600, seed=7) as gw:
        sync(settings_for(gw, db))
    nb = run_notebook(db)
    html = [o["data"]["text/html"] for c in nb.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if "vega-embed" in o.get("data", {}).get("text/html", "")]
    assert len(html) == 5  # per day, durations, failure rate, cache, cost
    for page in html:
        # the chart's data is embedded in its spec: the plot has rows to draw
        datasets, _ = json.JSONDecoder().raw_decode(page, page.index('"datasets": ') + 12)
        assert datasets and all(len(rows) > 0 for rows in datasets.values())
