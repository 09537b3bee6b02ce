"""What `pip install batchlake` puts into site-packages: one top-level name, and nothing that
shadows (or is shadowed by) a user's own `flows`, `sql` or `transforms` package."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

LAYERS = ("common", "gateway", "transforms", "warehouse", "sql", "flows", "simulator")


@pytest.mark.slow
def test_the_wheel_has_exactly_one_top_level_name(tmp_path: Path) -> None:
    # Built from a copy: setuptools leaves build/ and *.egg-info in the tree it builds.
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "data", "build", "*.egg-info", "__pycache__", "notebooks", "bench"))
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "-q", "-w", str(tmp_path), str(src)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("batchlake-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert top == {"batchlake"}
    for layer in LAYERS:
        assert f"batchlake/{layer}/__init__.py" in names
    # The SQL files travel as package data of batchlake.sql.
    assert any(n.startswith("batchlake/sql/views/") and n.endswith(".sql") for n in names)
    assert "batchlake/py.typed" in names


def test_layers_import_as_batchlake_subpackages_and_not_at_top_level(tmp_path: Path) -> None:
    # From a folder that is not the repository: only what the install provides is found.
    code = (
        "import importlib, sys\n"
        f"for name in {LAYERS!r}:\n"
        "    importlib.import_module('batchlake.' + name)\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError:\n"
        "        continue\n"
        "    sys.exit('top-level ' + name + ' is importable')\n"
        "import batchlake.sql as s\n"
        "assert s.listing('views'), 'views missing'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr + proc.stdout


def test_imports_point_down_the_layers() -> None:
    """common imports no other layer; gateway, warehouse and transforms never import the
    pipeline, the CLI or the flows."""
    lower = {"common": set(LAYERS) | {"pipeline", "cli", "report", "api"},
             "transforms": {"gateway", "warehouse", "flows", "pipeline", "cli", "simulator"},
             "gateway": {"warehouse", "flows", "pipeline", "cli", "simulator"},
             "warehouse": {"gateway", "flows", "pipeline", "cli", "simulator"},
             "sql": {"gateway", "warehouse", "flows", "pipeline", "cli"}}
    for folder, forbidden in lower.items():
        for path in (ROOT / folder).rglob("*.py"):
            for line in path.read_text(encoding="utf-8").splitlines():
                stripped = line.strip()
                if not stripped.startswith(("from batchlake", "import batchlake")):
                    continue
                target = stripped.split()[1].split(".")
                name = target[1] if len(target) > 1 else ""
                if name == "" and "import" in stripped:  # from batchlake import x
                    name = stripped.split(" import ")[1].split(",")[0].strip()
                assert name not in forbidden or name == folder, f"{path}: {stripped}"
