"""The notebook runs top to bottom against a demo database, so it never rots."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from batchlake.pipeline import sync
from batchlake.simulator import SimGateway
from tests.conftest import ROOT, settings_for


def run_notebook(db: str) -> Any:
    """Execute the notebook against ``db``; return it with its outputs."""
    nb = nbformat.read(ROOT / "notebooks" / "explore.ipynb", as_version=4)
    saved = os.environ.get("BATCHLAKE_DB")
    os.environ["BATCHLAKE_DB"] = db  # the kernel inherits it
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3",
                       resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    except Exception as e:  # the cell's error, not nbclient's wrapper
        pytest.fail(f"notebook failed: {str(e)[-2000:]}")
    finally:
        if saved is None:
            os.environ.pop("BATCHLAKE_DB", None)
        else:
            os.environ["BATCHLAKE_DB"] = saved
    return nb


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
