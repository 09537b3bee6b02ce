"""The commands that read the gateway into the lake: ``sync``, ``fetch``, ``results`` and
``reprice`` (parse the options, call the twin in batchlake.commands, render)."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from batchlake import commands
from batchlake.cli_app import CONFIG, app
from batchlake.cli_options import (
    ApiKeyHeaderOpt,
    ApiKeyOpt,
    BaseUrlOpt,
    BodiesOpt,
    DbOpt,
    FormatOpt,
    LockTimeoutOpt,
    PricesOnlyOpt,
    PricesOpt,
    ProvidersOpt,
)
from batchlake.cli_render import (
    check_format,
    err,
    listing_progress,
    on_wait,
    print_frame,
    print_json,
    print_results_run,
    print_results_status,
    print_sync_report,
    results_progress,
)


@app.command()
def sync(
    base_url: BaseUrlOpt = None,
    providers: ProvidersOpt = None,
    db: DbOpt = None,
    api_key: ApiKeyOpt = None,
    api_key_header: ApiKeyHeaderOpt = None,
    full_refresh: Annotated[bool, typer.Option(
        help="Ignore the watermark: list everything.")] = False,
    strict: Annotated[bool, typer.Option(
        help="Exit non-zero if any provider failed (default: only if all did).")] = False,
    prefect: Annotated[bool | None, typer.Option(
        "--prefect/--no-prefect",
        help="Run as a Prefect flow run (default: only when PREFECT_API_URL is set).")] = None,
    task_runner: Annotated[str, typer.Option(
        help="With --prefect: threads (default) or dask (a local 2-worker cluster).")
    ] = "threads",
    insecure: Annotated[bool | None, typer.Option(
        "--insecure/--verify-tls", help="Do not verify HTTPS certificates.",
        show_default=False)] = None,
    store_raw: Annotated[bool | None, typer.Option(
        "--store-raw/--no-store-raw", help="Keep raw_request/raw_response (secrets redacted).",
        show_default=False)] = None,
    timeout: Annotated[float | None, typer.Option(
        help="Per-request timeout, seconds (default 30).", show_default=False)] = None,
    lock_timeout: LockTimeoutOpt = None,
    page_limit: Annotated[int | None, typer.Option(
        help="Objects per list request (default 100).", show_default=False)] = None,
    chunk_size: Annotated[int | None, typer.Option(
        help="Objects per load transaction (default 15000).", show_default=False)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress, no summary.")
                     ] = False,
    fmt: Annotated[str, typer.Option(
        "--format", "-f", help="text (a line per provider) or json (every figure).")
    ] = "text",
    publish: Annotated[str | None, typer.Option(
        help="After the last commit, replace this file atomically with a read-only copy of "
             "the database (for BI tools and long notebooks).")] = None,
    publish_storage_version: Annotated[str | None, typer.Option(
        help="Write the published copy in this DuckDB storage format, e.g. v1.4.0 for "
             "DuckDB 1.4 readers.")] = None,
    results: Annotated[bool | None, typer.Option(
        "--results/--no-results", show_default=False,
        help="Also read the results (and cost) of newly finished batches (default: yes).")
    ] = None,
    results_limit: Annotated[int | None, typer.Option(
        help="Read at most this many batches' results per provider in this run (newest "
             "finished first; the rest follow in later runs).")] = None,
    results_budget: Annotated[float | None, typer.Option(
        help="Seconds this run may spend reading results, newest finished batch first "
             "(env BATCHLAKE_RESULTS_BUDGET_S; default 60; 0: no limit); the rest is the "
             "backlog: batchlake results --status shows it.", show_default=False)] = None,
    prices: PricesOpt = None,
    prices_only: PricesOnlyOpt = None,
    store_result_bodies: BodiesOpt = None,
    inputs: Annotated[bool, typer.Option(
        "--inputs/--no-inputs", help="Also read finished batches' input files into "
        "batch_requests (model, max_tokens, sizes, hashes; see v_request_outcomes).")] = False,
    store_request_bodies: Annotated[bool, typer.Option(
        "--store-request-bodies", help="With --inputs: keep each request's body (redacted); "
        "by default prompts, your users' data, are not stored.")] = False,
) -> None:
    """Sync batches from a Bifrost gateway into DuckDB; print a line per provider (listed,
    new, changed, rejected, results read, backlog left, seconds), its warnings, and one line
    for the run.

    Example: batchlake sync --base-url http://localhost:8080 --providers openai,anthropic
    """
    check_format(fmt, ("text", "json"))
    started = time.monotonic()
    with listing_progress(not quiet and fmt == "text" and err.is_terminal) as progress:
        rep = commands.sync(
            base_url=base_url, providers=providers, db=db, api_key=api_key,
            api_key_header=api_key_header, full_refresh=full_refresh, prefect=prefect,
            task_runner=task_runner, insecure=insecure, store_raw=store_raw, timeout=timeout,
            lock_timeout=lock_timeout, page_limit=page_limit, chunk_size=chunk_size,
            publish=publish, publish_storage_version=publish_storage_version,
            results=results, results_limit=results_limit, results_budget=results_budget,
            prices=prices, prices_only=prices_only, store_result_bodies=store_result_bodies,
            config=CONFIG["file"], on_progress=progress, inputs=inputs,
            store_request_bodies=store_request_bodies)
    if fmt == "json":
        print_json(rep.as_json(time.monotonic() - started))
    elif not quiet:
        print_sync_report(rep, time.monotonic() - started)
    if rep.all_failed or (strict and rep.failed):
        raise typer.Exit(1)


@app.command()
def fetch(
    batch_id: Annotated[str, typer.Argument(help="Batch id, e.g. batch_abc or batches/123.")],
    provider: Annotated[str, typer.Option(help="Provider the batch belongs to.")],
    base_url: BaseUrlOpt = None,
    db: DbOpt = None,
    api_key: ApiKeyOpt = None,
    api_key_header: ApiKeyHeaderOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Retrieve one batch by id, upsert it, print its stored row.

    Example: batchlake fetch batch_abc123 --provider openai
    """
    check_format(fmt)
    row = commands.fetch(batch_id, provider, base_url=base_url, db=db, api_key=api_key,
                         api_key_header=api_key_header, config=CONFIG["file"],
                         on_wait=on_wait)
    if fmt == "json":
        print_json(row)
        return
    import polars as pl

    print_frame(pl.DataFrame({"column": list(row), "value": [
        "" if v is None else str(v) for v in row.values()]}), fmt,
        title=f"{row['provider']} {batch_id}")


@app.command("results")
def results_cmd(
    base_url: BaseUrlOpt = None,
    providers: ProvidersOpt = None,
    db: DbOpt = None,
    api_key: ApiKeyOpt = None,
    api_key_header: ApiKeyHeaderOpt = None,
    refetch: Annotated[bool, typer.Option(
        help="Read again the results already stored (their lines are replaced).")] = False,
    status: Annotated[bool, typer.Option(
        "--status", help="Show, per provider, where results stand and the batches whose "
        "results failed, grouped by reason (reads the database only; --format json lists "
        "every batch).")] = False,
    budget: Annotated[float, typer.Option(
        help="Seconds to spend at most (0: until the backlog is drained).")] = 0.0,
    prices: PricesOpt = None,
    prices_only: PricesOnlyOpt = None,
    store_result_bodies: BodiesOpt = None,
    lock_timeout: LockTimeoutOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Read the results of finished batches already stored (each batch once), newest
    finished first, and price them: drains the backlog a sync's budget left, with a
    progress bar on a terminal. --status shows the backlog instead.

    Example: batchlake results --providers openai --prices my-prices.csv

    Example: batchlake results --status
    """
    check_format(fmt)
    if status:
        print_results_status(commands.results_status(
            db=db, lock_timeout=lock_timeout, config=CONFIG["file"], on_wait=on_wait), fmt)
        return
    with results_progress(err.is_terminal) as progress:
        rep = commands.results(
            base_url=base_url, providers=providers, db=db, api_key=api_key,
            api_key_header=api_key_header, refetch=refetch, budget=budget, prices=prices,
            prices_only=prices_only, store_result_bodies=store_result_bodies,
            lock_timeout=lock_timeout, config=CONFIG["file"], on_progress=progress)
    print_results_run(rep, fmt)
    if rep.all_failed:
        raise typer.Exit(1)


@app.command()
def reprice(
    db: DbOpt = None,
    prices: PricesOpt = None,
    prices_only: PricesOnlyOpt = None,
    lock_timeout: LockTimeoutOpt = None,
) -> None:
    """Recompute every stored cost from the prices in force, without a single request.

    Example: batchlake reprice --prices my-prices.csv
    """
    done = commands.reprice(db=db, prices=prices, prices_only=prices_only,
                            lock_timeout=lock_timeout, config=CONFIG["file"])
    err.print(f"repriced {done.lines:,} result lines; {done.unpriced:,} unpriced (see "
              "v_unpriced_models)", highlight=False)
