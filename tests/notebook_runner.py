"""Running the explore notebook top to bottom against a database (a real Jupyter kernel)."""

from __future__ import annotations

import os
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT


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
