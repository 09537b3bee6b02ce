"""The repository's layers, read from where they are defined: the links batchlake/<layer> ->
../<layer> (the Makefile and pyproject.toml read the same links)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def layers(root: Path = ROOT) -> tuple[str, ...]:
    """The layer folders: every link in batchlake/."""
    return tuple(sorted(p.name for p in (root / "batchlake").iterdir() if p.is_symlink()))


LAYERS = layers()


def layer_surface(layer: str, root: Path = ROOT) -> set[str]:
    """What a layer's __init__ offers the other layers: its ``__all__``."""
    tree = ast.parse((root / layer / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return set(ast.literal_eval(node.value))
    return set()
