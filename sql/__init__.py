"""batchlake's SQL: migrations, merge statements and views as .sql files (package data).

Placeholders ``{{name}}`` are filled from ``transforms/schema.py`` by ``render`` so that column
lists are never written twice.
"""

from __future__ import annotations

from importlib import resources
from typing import Any


def read(relative: str) -> str:
    """The text of ``sql/<relative>``."""
    return resources.files(__name__).joinpath(relative).read_text(encoding="utf-8")


def listing(folder: str) -> list[str]:
    """Sorted .sql file names in ``sql/<folder>``."""
    d = resources.files(__name__).joinpath(folder)
    return sorted(p.name for p in d.iterdir() if p.name.endswith(".sql"))


def render(text: str, values: dict[str, str]) -> str:
    for k, v in values.items():
        text = text.replace("{{" + k + "}}", v)
    if "{{" in text:
        raise KeyError(f"unfilled placeholder in SQL: {text[text.index('{{'):][:40]}")
    return text


def used_params(text: str, values: dict[str, Any]) -> dict[str, Any]:
    """The named parameters (``$name``) of ``values`` that ``text`` uses: DuckDB refuses a
    parameter a statement does not name."""
    return {k: v for k, v in values.items() if f"${k}" in text}


def statements(text: str) -> list[str]:
    """Split a .sql file into statements (on ';' at a line end); comment-only parts drop."""
    out = []
    for part in text.split(";\n"):
        body = "\n".join(ln for ln in part.splitlines() if not ln.strip().startswith("--"))
        if body.strip().rstrip(";").strip():
            out.append(part.strip().rstrip(";"))
    return out
