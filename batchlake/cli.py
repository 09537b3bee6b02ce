"""The ``batchlake`` command line. Each command parses its options, calls the Python function
of the same name in batchlake.commands (the API a notebook calls) and renders the answer
(batchlake/cli_render.py); the options shared by several commands are defined once
(batchlake/cli_options.py).

Expected mistakes end with one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click
import typer

# Importing the command modules registers their commands on the app: --help lists them in
# this order.
# isort: off
from batchlake import cli_sync, cli_lake, cli_recovery, cli_simulator  # noqa: F401
# isort: on
from batchlake.cli_app import app
from batchlake.cli_render import err
from batchlake.common import BatchlakeError

__all__ = ["app", "main"]


def main(args: list[str] | None = None) -> None:
    """Entry point: expected errors become one line and an exit code. ``args``: the command
    line without the program name (default: ``sys.argv[1:]``)."""
    # The CLI prints its own summary; library logs show only real errors unless asked.
    level = os.environ.get("BATCHLAKE_LOG_LEVEL", "").upper()
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s",
                        level=level or logging.WARNING)
    logging.getLogger("batchlake").setLevel(level or logging.ERROR)
    try:
        rv = _click_command()(args=spread_inputs(sys.argv[1:] if args is None else args),
                              prog_name="batchlake", standalone_mode=False)
    except BatchlakeError as e:
        err.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except (typer.Abort, click.exceptions.Abort):
        err.print("aborted")
        sys.exit(130)
    except (typer.TyperException, click.ClickException) as e:
        # typer 0.29 raises its own copy of click's exceptions (typer._click), which are not
        # click's: a mistyped option is one line naming --help, never a traceback
        _usage_error(e, args if args is not None else sys.argv[1:])
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)


@functools.cache
def _click_command() -> Callable[..., Any]:
    """The click command typer builds from ``app``, built once per process: building reads
    every command's signature (40-70 ms), which each call of ``main`` paid again (a test or a
    notebook calls it many times). Calling it, not ``app``, also leaves out typer's own
    traceback hook, which prints each frame's locals: a bug's traceback is Python's."""
    return typer.main.get_command(app)


def spread_inputs(args: list[str]) -> list[str]:
    """``retry --inputs a.jsonl b.jsonl`` as click reads it: ``--inputs`` before each file
    (an option takes one value; the files a shell glob gives come as several)."""
    if "retry" not in args[:3] or "--inputs" not in args:
        return args
    out: list[str] = []
    taking = False
    for a in args:
        if a == "--inputs":
            taking = True
            continue
        if taking and not a.startswith("-"):
            out += ["--inputs", a]
            continue
        taking = False
        out.append(a)
    return out


def _usage_error(e: Exception, args: list[str]) -> NoReturn:
    message = e.format_message() if hasattr(e, "format_message") else str(e)
    command = next((a for a in args if not a.startswith("-")), None)
    hint = f"batchlake {command} --help" if command in _command_names() else "batchlake --help"
    line = f"error: {' '.join(message.split()).rstrip('.')}; see {hint}"
    err.print(line, style="red", highlight=False, markup=False, soft_wrap=True)
    code = getattr(e, "exit_code", 2)
    sys.exit(code if isinstance(code, int) else 2)


def _command_names() -> set[str]:
    group = typer.main.get_group(app)
    return set(group.commands)


if __name__ == "__main__":
    main()
