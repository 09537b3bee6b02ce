"""The commands that read the lake: ``sql``, ``report``, ``stuck``, ``schema``,
``export parquet`` and ``serve``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from batchlake import commands
from batchlake.cli_app import CONFIG, app, db_in_force, export_app
from batchlake.cli_options import (
    DbOpt,
    FormatOpt,
    WaitOpt,
)
from batchlake.cli_render import (
    check_format,
    err,
    on_wait,
    print_frame,
    print_report,
)
from batchlake.common import ConfigError, parse_providers


@app.command("sql")
def sql_cmd(
    query: Annotated[str, typer.Argument(help="SQL to run (read-only).")],
    db: DbOpt = None,
    fmt: FormatOpt = "table",
    wait: WaitOpt = 60.0,
) -> None:
    """Run a read-only SQL query against the database and print the result.

    Example: batchlake sql "SELECT provider, count(*) FROM batches GROUP BY 1"
    """
    check_format(fmt)
    print_frame(commands.query(query, db=db, wait=wait, config=CONFIG["file"],
                               on_wait=on_wait), fmt)


@app.command()
def report(
    db: DbOpt = None,
    since: Annotated[str | None, typer.Option(help="Only batches created in the last "
                                                   "7d / 24h / 30m.")] = None,
    provider: Annotated[str | None, typer.Option(help="Only this provider.")] = None,
    fmt: FormatOpt = "table",
    html: Annotated[str | None, typer.Option(
        "--html", help="Also write a self-contained HTML page here.")] = None,
    wait: WaitOpt = 60.0,
) -> None:
    """Summary, durations, costs, errors, cache, results backlog and overdue batches.

    Example: batchlake report --since 7d --format json
    """
    check_format(fmt)
    rep = commands.report(db=db, since=since, provider=provider, wait=wait,
                          config=CONFIG["file"], on_wait=on_wait)
    if html:
        Path(html).write_text(rep.to_html(), encoding="utf-8")
        err.print(f"wrote {html}", highlight=False)
    print_report(rep, fmt)


@app.command()
def stuck(
    db: DbOpt = None,
    older_than: Annotated[str | None, typer.Option(
        help="Also list open batches unchanged for this long, e.g. 2h.")] = None,
    provider: Annotated[str | None, typer.Option(help="Only this provider.")] = None,
    fmt: FormatOpt = "table",
    wait: WaitOpt = 60.0,
) -> None:
    """List overdue batches; exit 2 when there are any (for cron or CI alerts).

    Example: batchlake stuck --older-than 2h || notify-team
    """
    check_format(fmt)
    df = commands.stuck(db=db, older_than=older_than, provider=provider, wait=wait,
                        config=CONFIG["file"], on_wait=on_wait)
    if df.height == 0:
        err.print("no stuck batches")
        return
    print_frame(df, fmt, title=f"{df.height} stuck batches")
    raise typer.Exit(2)


@app.command()
def schema() -> None:
    """Print the table docs (Markdown) generated from the one schema definition.

    Example: batchlake schema > docs/schema.md
    """
    sys.stdout.write(commands.schema() + "\n")


@export_app.command("parquet")
def export_parquet(
    directory: Annotated[str, typer.Argument(help="Target folder of the dataset.")],
    db: DbOpt = None,
    partition_by: Annotated[str, typer.Option(
        help="Partition columns for batches.")] = "provider,created_date",
    wait: WaitOpt = 60.0,
) -> None:
    """Export the tables as a hive-partitioned, zstd Parquet dataset (incremental).

    Example: batchlake export parquet lake/ --partition-by provider,created_date
    """
    written = commands.export_parquet(directory, db=db, partition_by=partition_by, wait=wait,
                                      config=CONFIG["file"], on_wait=on_wait)
    err.print(f"wrote {written} partition files under {directory}", highlight=False)


@app.command()
def serve(
    db: DbOpt = None,
    cron: Annotated[str, typer.Option(help="Incremental sync schedule.")] = "*/10 * * * *",
    reconcile_cron: Annotated[str, typer.Option(help="Daily full reconcile.")] = "0 3 * * *",
    base_url: Annotated[str | None, typer.Option(
        help="Gateway URL (else BIFROST_BASE_URL of the serving process).")] = None,
    providers: Annotated[str | None, typer.Option(help="Comma-separated providers.")] = None,
    publish: Annotated[str | None, typer.Option(
        help="Each run replaces this file with a read-only copy of the database.")] = None,
    publish_storage_version: Annotated[str | None, typer.Option(
        help="DuckDB storage format of the copy, e.g. v1.4.0.")] = None,
) -> None:
    """Serve the scheduled deployments against the configured Prefect API (needs
    PREFECT_API_URL, e.g. from a local `prefect server start`).

    Example: PREFECT_API_URL=http://127.0.0.1:4200/api batchlake serve
    """
    if not os.environ.get("PREFECT_API_URL"):
        raise ConfigError("serve needs a Prefect server: run `prefect server start` and export "
                          "PREFECT_API_URL=http://127.0.0.1:4200/api")
    from batchlake.flows import serve_deployments

    if base_url:
        from batchlake.common import check_base_url

        base_url, _ = check_base_url(base_url)  # credentials never become parameters
    db = db_in_force(db)
    if publish:
        from batchlake.warehouse import check_storage_version, check_target

        check_target(publish, db)
        check_storage_version(publish_storage_version)
        publish = str(Path(publish).resolve())
    serve_deployments(db_path=str(Path(db).resolve()), cron=cron, reconcile_cron=reconcile_cron,
                      base_url=base_url,
                      providers=list(parse_providers(providers)) if providers else None,
                      publish_path=publish, publish_storage_version=publish_storage_version)
