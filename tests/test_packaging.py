"""What `pip install batchlake` puts into site-packages: one top-level name, and nothing that
shadows (or is shadowed by) a user's own `flows`, `sql` or `transforms` package."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.layout import LAYERS, layer_surface, layers


@pytest.mark.slow
def test_the_wheel_has_exactly_one_top_level_name(tmp_path: Path) -> None:
    # Built from a copy of the tree as a clone has it (the batchlake/<layer> links stay
    # links): setuptools leaves build/ and *.egg-info in the tree it builds.
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "data", "build", "*.egg-info", "__pycache__", "notebooks", "bench"))
    assert (src / "batchlake" / "sql").is_symlink()
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
    stages = {"run", "pricing", "batch_stage", "results_stage", "collector", "publishing",
              "pipeline", "planner", "cli", "report", "api"}
    lower = {"common": set(LAYERS) | stages,
             "transforms": {"gateway", "warehouse", "flows", "simulator"} | stages,
             "gateway": {"warehouse", "flows", "simulator"} | stages,
             "warehouse": {"gateway", "flows", "simulator"} | stages,
             "sql": {"gateway", "warehouse", "flows"} | stages}
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


def _imports(path: Path) -> Iterator[tuple[int, str, list[str] | None]]:
    """Each absolute import of a source file: (line, module, the names taken from it, or
    None for ``import module``)."""
    import ast

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.lineno, node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name, None


def surface_violations(root: Path = ROOT) -> list[str]:
    """Imports that cross into another layer other than through its ``__init__``'s
    ``__all__``, and bare layer imports (``import transforms``: it works under pytest from
    the repository root, and fails in the installed wheel)."""
    all_layers = layers(root)
    surfaces = {layer: layer_surface(layer, root) for layer in all_layers}
    found = []
    files = [*(root / "batchlake").glob("*.py"),
             *(p for layer in all_layers for p in (root / layer).rglob("*.py"))]
    for path in files:
        own = path.relative_to(root).parts[0]
        for line, module, names in _imports(path):
            where = f"{path.relative_to(root)}:{line}"
            parts = module.split(".")
            if parts[0] in all_layers:
                found.append(f"{where}: bare layer import {module}")
            elif (parts[0] == "batchlake" and len(parts) > 1 and parts[1] in all_layers
                  and parts[1] != own):
                if len(parts) > 2 or names is None:
                    found.append(f"{where}: {module} reaches past batchlake.{parts[1]}'s "
                                 "__init__")
                elif missing := [n for n in names if n not in surfaces[parts[1]]]:
                    found.append(f"{where}: {missing} not in batchlake.{parts[1]}.__all__")
    return found


def test_layers_meet_only_through_their_public_surfaces() -> None:
    assert surface_violations() == []


def test_the_surface_check_finds_a_reach_past_a_layer_and_a_bare_import(tmp_path: Path
                                                                        ) -> None:
    fake = tmp_path / "repo"
    shutil.copytree(ROOT, fake, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "data", "build", "*.egg-info", "__pycache__", "notebooks", "bench",
        "tests", "docs"))
    (fake / "batchlake" / "reach.py").write_text(
        "from batchlake.warehouse.db import query_frame\nimport transforms\n"
        "from batchlake.gateway import _decode_page\n")
    found = surface_violations(fake)
    assert len(found) == 3, found
    assert any("reaches past batchlake.warehouse's __init__" in f for f in found)
    assert any("bare layer import transforms" in f for f in found)
    assert any("['_decode_page'] not in batchlake.gateway.__all__" in f for f in found)


def _module_of(path: Path) -> str:
    """The installed name of a source file: batchlake/x.py -> batchlake.x, gateway/y.py ->
    batchlake.gateway.y (the package-dir mapping in pyproject.toml)."""
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] != "batchlake":
        parts.insert(0, "batchlake")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Every batchlake module and the batchlake modules it imports: top level, inside
    functions and under TYPE_CHECKING alike (a lazy import is still a dependency)."""
    import ast

    files = [p for d in ("batchlake", *LAYERS) for p in (ROOT / d).rglob("*.py")]
    modules = {_module_of(p): p for p in files}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level
                                                         + 1] + ([base] if base else []))
                # `from batchlake import sql` names a module; `from x import Name` names x
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            for t in targets:
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != name and t != "batchlake":  # the package's own __init__
                    deps.add(t)
        graph[name] = deps
    return graph


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """A path of imports that comes back to its start, or None (depth-first walk)."""
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                return [*path[path.index(d):], d]
            if d not in state and (found := visit(d)):
                return found
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_circles() -> None:
    """No module reaches itself through imports: each stage sits below what composes it."""
    graph = import_graph()
    assert "batchlake.pipeline" in graph["batchlake.flows.sync"]
    assert "batchlake.run" in graph["batchlake.results_stage"]
    circle = find_circle(graph)
    assert circle is None, "import circle: " + " -> ".join(circle or [])


def test_the_circle_check_finds_the_circle_this_layout_had() -> None:
    # pipeline and results imported each other before the stages had modules of their own
    graph = import_graph()
    graph["batchlake.results_stage"] = graph["batchlake.results_stage"] | {"batchlake.pipeline"}
    circle = find_circle(graph)
    assert circle is not None and circle[0] == circle[-1]
    assert {"batchlake.pipeline", "batchlake.results_stage"} <= set(circle)


def test_the_tree_and_the_editable_install_are_laid_out_as_the_package() -> None:
    """What static tools (mypy, pyright, an editor's go-to-definition) need: batchlake/ in the
    repository holds every layer (links to the top-level folders), and the editable install
    is a plain path on sys.path (strict mode), not an import hook they cannot follow."""
    import site
    import sysconfig

    for layer in LAYERS:
        link = ROOT / "batchlake" / layer
        assert link.is_symlink() and link.resolve() == (ROOT / layer).resolve(), link
    dirs = {sysconfig.get_paths()["purelib"], *site.getsitepackages()}
    pths = [p for d in dirs for p in Path(d).glob("__editable__.batchlake-*.pth")]
    if not pths:
        pytest.skip("batchlake is not installed editable here (make installs it so)")
    (entry,) = {line.strip() for p in pths for line in p.read_text().splitlines()
                if line.strip()}
    assert not entry.startswith("import"), "an import hook: make installs in strict mode"
    for layer in LAYERS:
        assert (Path(entry) / "batchlake" / layer / "__init__.py").is_file(), layer
