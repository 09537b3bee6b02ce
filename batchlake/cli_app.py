"""The ``batchlake`` Typer app, its global options (``--config``, ``--version``) and
``batchlake config``. The commands register on ``app`` from the cli_* modules that
batchlake/cli.py imports."""

from __future__ import annotations

from typing import Annotated

import typer

from batchlake import commands
from batchlake.cli_options import FormatOpt
from batchlake.cli_render import (
    check_format,
    out,
    print_frame,
)

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="batchlake: see your LLM batch jobs. Bifrost gateway -> DuckDB.")
export_app = typer.Typer(no_args_is_help=True, help="Export tables to other engines.")
app.add_typer(export_app, name="export")


CONFIG: dict[str, str | None] = {"file": None}  # the global --config FILE


def db_in_force(db: str | None) -> str:
    """The database path in force for a command."""
    return commands.settings_for(CONFIG["file"], db=db).db_path


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        out.print(f"batchlake {version('batchlake')}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main_options(
    config: Annotated[str | None, typer.Option(
        "--config", help="Settings file (TOML; default ./batchlake.toml, else "
        "[tool.batchlake] in ./pyproject.toml; env BATCHLAKE_CONFIG).",
        show_default=False)] = None,
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True,
        help="Print batchlake's version and exit.")] = False,
) -> None:
    """batchlake: see your LLM batch jobs. Bifrost gateway -> DuckDB."""
    CONFIG["file"] = config


@app.command("config")
def config_cmd(fmt: FormatOpt = "table") -> None:
    """Print the settings in force and where each came from (secrets masked).

    Order: options, then the environment (BIFROST_*, BATCHLAKE_*), then the config file,
    then the defaults.

    Example: batchlake --config prod.toml config
    """
    check_format(fmt)
    settings = commands.config(config=CONFIG["file"])
    print_frame(settings.rows, fmt,
                title=f"settings (config file: {settings.config_file or 'none'})")
