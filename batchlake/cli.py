"""The ``batchlake`` command line. Each command parses its options, calls the Python function
of the same name in batchlake.commands (the API a notebook calls) and renders the answer
(batchlake/cli_render.py); the options shared by several commands are defined once
(batchlake/cli_options.py).

Expected mistakes end with one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated, NoReturn

import click
import typer

from batchlake import commands
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
    WaitOpt,
)
from batchlake.cli_render import (
    check_format,
    err,
    listing_progress,
    on_wait,
    out,
    print_frame,
    print_json,
    print_reconcile,
    print_report,
    print_results_run,
    print_results_status,
    print_sync_report,
)
from batchlake.common import BatchlakeError, ConfigError, parse_providers

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="batchlake: see your LLM batch jobs. Bifrost gateway -> DuckDB.")
export_app = typer.Typer(no_args_is_help=True, help="Export tables to other engines.")
app.add_typer(export_app, name="export")

_CONFIG: dict[str, str | None] = {"file": None}  # the global --config FILE


def _db(db: str | None) -> str:
    """The database path in force for a command."""
    return commands.settings_for(_CONFIG["file"], db=db).db_path


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
    _CONFIG["file"] = config


@app.command("config")
def config_cmd(fmt: FormatOpt = "table") -> None:
    """Print the settings in force and where each came from (secrets masked).

    Order: options, then the environment (BIFROST_*, BATCHLAKE_*), then the config file,
    then the defaults.

    Example: batchlake --config prod.toml config
    """
    check_format(fmt)
    settings = commands.config(config=_CONFIG["file"])
    print_frame(settings.rows, fmt,
                title=f"settings (config file: {settings.config_file or 'none'})")


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
    if fmt not in ("text", "json"):
        raise ConfigError(f"unknown format {fmt!r}; use text or json")
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
            config=_CONFIG["file"], on_progress=progress, inputs=inputs,
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
                         api_key_header=api_key_header, config=_CONFIG["file"],
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
            db=db, lock_timeout=lock_timeout, config=_CONFIG["file"], on_wait=on_wait), fmt)
        return
    from batchlake.cli_render import results_progress

    with results_progress(err.is_terminal) as progress:
        rep = commands.results(
            base_url=base_url, providers=providers, db=db, api_key=api_key,
            api_key_header=api_key_header, refetch=refetch, budget=budget, prices=prices,
            prices_only=prices_only, store_result_bodies=store_result_bodies,
            lock_timeout=lock_timeout, config=_CONFIG["file"], on_progress=progress)
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
                            lock_timeout=lock_timeout, config=_CONFIG["file"])
    err.print(f"repriced {done.lines:,} result lines; {done.unpriced:,} unpriced (see "
              "v_unpriced_models)", highlight=False)


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
    print_frame(commands.query(query, db=db, wait=wait, config=_CONFIG["file"],
                               on_wait=on_wait), fmt)


@app.command()
def gateway(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8080,
    seed: Annotated[int, typer.Option(help="Population seed.")] = 7,
    batches: Annotated[int, typer.Option(help="How many batches.")] = 2000,
    api_key: Annotated[str | None, typer.Option(
        help="Require this key (401 otherwise).", show_default=False)] = None,
    tick: Annotated[int, typer.Option(
        help="Advance the clock this many seconds at each listing's first page.")] = 0,
    future_share: Annotated[float, typer.Option(
        help="Share of batches created later, arriving as the clock advances.")] = 0.1,
    providers: Annotated[str | None, typer.Option(
        help="Providers to simulate (default: openai,anthropic,gemini,bedrock,azure).")] = None,
    history_days: Annotated[float, typer.Option(
        help="Batches were created over this many days before now.")] = 3.0,
    metadata_keys: Annotated[int, typer.Option(
        help="Metadata keys per tagged batch: 2 (team, job) up to 12 (~1 KB objects).")] = 2,
    wild: Annotated[bool, typer.Option(
        "--wild", help="Serve what gateways send in the wild: providers in real traffic's "
        "shares, error arrays, raw payloads, provider nulls (see simulator/wild.py).")] = False,
    results_max_lines: Annotated[int, typer.Option(
        help="Lines per results body at most (a batch's request count, capped; 0: "
             "uncapped).")] = 40,
    big_batch: Annotated[int, typer.Option(
        help="Also serve one finished OpenAI batch with this many requests (results "
             "benchmark; 0: none).")] = 0,
    big_input_padding: Annotated[int, typer.Option(
        help="Characters more in each prompt of the big batch's input file (retry "
             "benchmark: 4000 makes 50,000 requests a ~200 MB file).")] = 0,
    gemini_file_content: Annotated[bool, typer.Option(
        "--gemini-file-content", help="Serve Gemini input files (a newer or direct gateway; "
        "Bifrost answers 500).")] = False,
    results_encoding: Annotated[str, typer.Option(
        help="How results bodies are written: go (Bifrost's encoder: HTML-escaped, final "
             "newline), raw, ascii (every non-ASCII character escaped) or indented.")] = "go",
    results_route: Annotated[str, typer.Option(
        help="ok; missing (results answer a router's plain 404: a gateway without the "
             "route); bifrost-404 (one Bifrost 404 for every batch); list-only (results and "
             "retrieves both so).")] = "ok",
    latency: Annotated[str | None, typer.Option(
        help="A real gateway's pace: wait this long before each answer, per route, e.g. "
             "list=300ms,retrieve=200ms,results=600ms.", show_default=False)] = None,
    latency_jitter: Annotated[float, typer.Option(
        help="Vary each wait by up to this share of its latency (0 to 1).")] = 0.0,
    max_inflight: Annotated[str | None, typer.Option(
        help="At most this many requests of a route in flight, e.g. results=12; more are "
             "answered 429 with Retry-After.", show_default=False)] = None,
    retry_after: Annotated[int, typer.Option(
        help="The Retry-After seconds of those 429s.")] = 1,
    logs_api: Annotated[str, typer.Option(
        help="Bifrost's logs API with each batch's cost row: ok; missing (a plain 404, as "
             "Bifrost 1.x), missing-json (a JSON 404) or not-allowed (405).")] = "ok",
    admin_user: Annotated[str | None, typer.Option(
        help="With --admin-password: /api/* takes only these as Basic auth (401 "
             "otherwise).", show_default=False)] = None,
    admin_password: Annotated[str | None, typer.Option(
        help="The simulated gateway's admin password.", show_default=False)] = None,
) -> None:
    """Run the simulated Bifrost gateway (for the demo, tests and benchmarks).

    Example: batchlake gateway --port 8080 --batches 100000 --wild --metadata-keys 12

    Example: batchlake gateway --latency list=300ms,results=600ms --max-inflight results=12
    """
    from batchlake.simulator import RESULTS_ENCODINGS, SimGateway, parse_route_values

    if results_encoding not in RESULTS_ENCODINGS:
        raise ConfigError(f"--results-encoding {results_encoding!r} is not known; use one of "
                          + ", ".join(RESULTS_ENCODINGS))
    try:  # a bad pace is one line
        gw = SimGateway(
            batches, seed=seed, api_key=api_key, auto_advance_s=tick,
            future_share=future_share, providers=parse_providers(providers),
            history_s=int(history_days * 86400), metadata_keys=metadata_keys,
            wild=wild, results_max_lines=results_max_lines or None,
            results_encoding=results_encoding, results_route=results_route,
            latency=parse_route_values(latency, "--latency", "duration"),
            max_inflight=parse_route_values(max_inflight, "--max-inflight", "count"),
            latency_jitter=latency_jitter, retry_after_s=retry_after,
            gemini_file_content=gemini_file_content)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if results_route not in ("ok", "missing", "bifrost-404", "list-only"):
        raise ConfigError(f"--results-route {results_route!r} is not known; use ok, missing, "
                          "bifrost-404 or list-only")
    if big_batch:
        big = gw.add_big_batch(big_batch)
        if big_input_padding:
            gw.files.input_padding[big.id] = big_input_padding
    from batchlake.simulator import LOGS_MODES, logs_book

    if logs_api not in LOGS_MODES:
        raise ConfigError(f"--logs-api {logs_api!r} is not known; use one of "
                          + ", ".join(LOGS_MODES))
    if (admin_user is None) != (admin_password is None):
        raise ConfigError("pass both --admin-user and --admin-password, or neither")
    logs_book(gw).mode = logs_api
    if admin_user is not None and admin_password is not None:
        logs_book(gw).admin = (admin_user, admin_password)
    try:
        gw.serve_forever(port=port, on_ready=lambda url: err.print(
            f"simulated gateway on {url} ({batches} batches)", highlight=False))
    except OSError as e:
        raise ConfigError(f"cannot listen on 127.0.0.1:{port} ({e.strerror}); "
                          "pick another --port") from None
    except KeyboardInterrupt:
        pass


@app.command()
def demo(
    db: DbOpt = None,
    batches: Annotated[int, typer.Option(help="Simulated batches.")] = 2000,
    seed: Annotated[int, typer.Option(help="Population seed.")] = 7,
    prefect: Annotated[bool, typer.Option(
        "--prefect/--no-prefect", help="Run the sync as a Prefect flow run.")] = False,
) -> None:
    """Start the simulated gateway, sync it into DuckDB twice (three simulated hours apart,
    the second at the wall clock's now), print a short report.

    The demo writes a fresh database each time (a simulated world is not history); it
    replaces only a file an earlier demo wrote, never one holding real syncs.

    Example: batchlake demo --db data/batchlake.duckdb
    """
    from batchlake.demo import run_demo
    from batchlake.retrying import RetryReport, retry

    path = _db(db)
    started = time.monotonic()
    retried: list[RetryReport] = []
    retry_out = str(Path(path).parent / "retry")

    def retry_openai(url: str) -> None:  # the demo's last word: what failed, ready to resend
        retried.append(retry("openai", out=retry_out, db=path, base_url=url, since="24h"))

    first, second = run_demo(path, batches=batches, seed=seed, prefect=prefect,
                             on_wait=on_wait, then=retry_openai)
    print_sync_report(first, time.monotonic() - started)
    out.print(f"second sync, 3 hours later (now): "
              f"{sum(r.counts.updated for r in second.results)} batches changed, "
              f"{sum(r.counts.inserted for r in second.results)} new, "
              f"{sum(r.refetched for r in second.results)} followed by id", highlight=False)
    print_report(commands.report(db=path, on_wait=on_wait), "table")
    from batchlake.cli_render import print_retry_report

    out.print("\nbatchlake retry --provider openai --since 24h --out " + retry_out,
              highlight=False, markup=False)
    print_retry_report(retried[0], "text")
    out.print(f"\nDatabase: {path}. Try: batchlake sql \"SELECT * FROM v_daily_summary\" "
              f"--db {path}", highlight=False)


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
                          config=_CONFIG["file"], on_wait=on_wait)
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
                        config=_CONFIG["file"], on_wait=on_wait)
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
                                      config=_CONFIG["file"], on_wait=on_wait)
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
    db = _db(db)
    if publish:
        from batchlake.warehouse import check_storage_version, check_target

        check_target(publish, db)
        check_storage_version(publish_storage_version)
        publish = str(Path(publish).resolve())
    serve_deployments(db_path=str(Path(db).resolve()), cron=cron, reconcile_cron=reconcile_cron,
                      base_url=base_url,
                      providers=list(parse_providers(providers)) if providers else None,
                      publish_path=publish, publish_storage_version=publish_storage_version)


@app.command("retry")
def retry_cmd(
    provider: Annotated[str, typer.Option(help="The provider whose failed requests to retry.")],
    out: Annotated[str, typer.Option(
        "--out", help="Folder for the retry files (created; an earlier run's files in it, "
        "named by its retry-manifest.json, are replaced).")],
    batch: Annotated[list[str] | None, typer.Option(
        "--batch", help="Only this batch (with its chain of retries); repeat for more.",
        show_default=False)] = None,
    since: Annotated[str | None, typer.Option(
        help="Only batches created in the last 7d / 24h / 30m.")] = None,
    error_code: Annotated[str | None, typer.Option(
        help="Only requests that failed with this error code (e.g. overloaded_error, "
        "batch_expired) or for this reason (errored, expired, canceled, no_result_line, "
        "batch_failed).")] = None,
    inputs: Annotated[list[str] | None, typer.Option(
        "--inputs", help="FILE…: your own input files, joined by custom_id where the gateway "
        "cannot return a batch's input (Anthropic always; any provider whose file route "
        "fails).", show_default=False)] = None,
    submit: Annotated[bool, typer.Option(
        "--submit", help="Upload each file and create its batch through the gateway (without "
        "it, nothing is written to the gateway).")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Offer (and submit) again requests already submitted in retry "
        "batches that have not finished.")] = False,
    role_arn: Annotated[str | None, typer.Option(
        help="Bedrock --submit: the IAM role the job runs as (else the gateway key's).")
    ] = None,
    output_s3_uri: Annotated[str | None, typer.Option(
        help="Bedrock --submit: where the job writes its output (s3://bucket/prefix/).")
    ] = None,
    base_url: BaseUrlOpt = None,
    db: DbOpt = None,
    api_key: ApiKeyOpt = None,
    api_key_header: ApiKeyHeaderOpt = None,
    lock_timeout: LockTimeoutOpt = None,
    fmt: Annotated[str, typer.Option(
        "--format", "-f", help="text (a summary) or json (every figure).")] = "text",
) -> None:
    """Write every request of the selected finished batches that did not succeed (errored,
    expired, cancelled, or never answered) into ready-to-submit batch input files, in the
    provider's own format; print them by reason and by source batch, with the estimated
    cost at batch rates. --submit also creates the batches.

    Example: batchlake retry --provider openai --since 7d --out retry/

    Example: batchlake retry --provider anthropic --inputs sent.jsonl --out retry/ --submit
    """
    if fmt not in ("text", "json"):
        raise ConfigError(f"unknown format {fmt!r}; use text or json")
    from batchlake.cli_render import print_retry_event, print_retry_report
    from batchlake.retrying import retry

    rep = retry(provider, out=out, batch=batch, since=since, error_code=error_code,
                inputs=inputs, submit=submit, force=force, role_arn=role_arn,
                output_s3_uri=output_s3_uri, base_url=base_url, db=db, api_key=api_key,
                api_key_header=api_key_header, lock_timeout=lock_timeout,
                config=_CONFIG["file"], on_event=print_retry_event)
    print_retry_report(rep, fmt)


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


@app.command("reconcile")
def reconcile_cmd(
    base_url: BaseUrlOpt = None,
    providers: ProvidersOpt = None,
    db: DbOpt = None,
    api_key: ApiKeyOpt = None,
    api_key_header: ApiKeyHeaderOpt = None,
    admin_user: Annotated[str | None, typer.Option(
        help="Bifrost's admin user, for its logs API (/api/*; env BIFROST_ADMIN_USER); the "
             "password only from BIFROST_ADMIN_PASSWORD or the config file.",
        show_default=False)] = None,
    since: Annotated[str, typer.Option(
        help="Batches created in the last 30d / 7d / 24h (0: all).")] = "30d",
    recheck: Annotated[bool, typer.Option(
        help="Ask the gateway again about every batch in the window, not only those due.")
    ] = False,
    tolerance_pct: Annotated[float | None, typer.Option(
        help="Costs match within this % of the larger (default 0.01; env "
             "BATCHLAKE_RECONCILE_TOLERANCE_PCT) …", show_default=False)] = None,
    tolerance_usd: Annotated[float | None, typer.Option(
        help="… or this many USD, whichever is larger (default 0.0001; env "
             "BATCHLAKE_RECONCILE_TOLERANCE_USD).", show_default=False)] = None,
    lock_timeout: LockTimeoutOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Check the gateway's bill: each finished batch's cost beside the cost Bifrost itself
    recorded (its logs API), with a status per batch: match, differs (and why),
    gateway_unpriced, gateway_missing, batchlake_unpriced. Only batches never compared, whose
    results were refetched or repriced since, or whose gateway cost was missing or NULL are
    asked again.

    Example: BIFROST_ADMIN_PASSWORD=… batchlake reconcile --admin-user admin --since 7d
    """
    check_format(fmt)
    from batchlake.reconciling import reconcile

    rep = reconcile(base_url=base_url, providers=providers, db=db, api_key=api_key,
                    api_key_header=api_key_header, admin_user=admin_user,
                    since=None if since.strip() in ("0", "") else since, recheck=recheck,
                    tolerance_pct=tolerance_pct, tolerance_usd=tolerance_usd,
                    lock_timeout=lock_timeout, config=_CONFIG["file"])
    print_reconcile(rep, fmt)


def main(args: list[str] | None = None) -> None:
    """Entry point: expected errors become one line and an exit code. ``args``: the command
    line without the program name (default: ``sys.argv[1:]``)."""
    # The CLI prints its own summary; library logs show only real errors unless asked.
    level = os.environ.get("BATCHLAKE_LOG_LEVEL", "").upper()
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s",
                        level=level or logging.WARNING)
    logging.getLogger("batchlake").setLevel(level or logging.ERROR)
    try:
        rv = app(args=spread_inputs(sys.argv[1:] if args is None else args),
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
