"""The batchlake CLI run in this process, as a user's shell would run it: the same entry point
(``batchlake.cli.main``), its exit code, stdout and stderr, through click's CliRunner
isolation. A real process costs ~1.5 s of imports per command; tests of options, formats and
one-line errors need none of it (tests/conftest.py's ``run_cli`` runs the real process)."""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass

from click.testing import CliRunner

from batchlake.cli import main


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def invoke(*args: str, env: dict[str, str] | None = None,
           cwd: str | os.PathLike[str] | None = None) -> CliResult:
    """Run ``batchlake ARGS…`` in this process, with ``env`` set for the call (and ``cwd``
    as the working folder, where the config file is looked for)."""
    with (contextlib.chdir(cwd) if cwd is not None else contextlib.nullcontext()), \
            CliRunner().isolation(env={"COLUMNS": "200", **(env or {})}) as (out, err, _):
        try:
            main(list(args))
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        sys.stdout.flush()  # what the command wrote itself, past rich's consoles
        sys.stderr.flush()
        return CliResult(code, out.getvalue().decode("utf-8", "replace"),
                         err.getvalue().decode("utf-8", "replace"))
