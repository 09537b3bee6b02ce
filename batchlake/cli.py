"""The ``batchlake`` command line. Each command mirrors a Python function one to one.

Expected mistakes end with one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import click
import polars as pl
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from batchlake import report as rpt
from batchlake.common import (
    DEFAULT_DB,
    BatchlakeError,
    ConfigError,
    GatewayAuthError,
    GatewayError,
    GatewayUnreachable,
    Settings,
    parse_providers,
)

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="batchlake: see your LLM batch jobs. Bifrost gateway -> DuckDB.")
export_app = typer.Typer(no_args_is_help=True, help="Export tables to other engines.")
app.add_typer(export_app, name="export")
# Wide when piped: a log file or CI output should not fold every column.
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)

DbOpt = Annotated[str | None, typer.Option(
    "--db", help="DuckDB file, or md:NAME for MotherDuck (env BATCHLAKE_DB; default "
    f"{DEFAULT_DB}).", show_default=False)]
# The gateway options that sync, results and fetch share.
BaseUrlOpt = Annotated[str | None, typer.Option(help="Gateway URL (env BIFROST_BASE_URL).")]
ProvidersOpt = Annotated[str | None, typer.Option(
    help="Comma-separated providers (env BATCHLAKE_PROVIDERS).")]
ApiKeyOpt = Annotated[str | None, typer.Option(
    help="Gateway key, sent as Bearer (env BIFROST_API_KEY; prefer the env).",
    show_default=False)]
ApiKeyHeaderOpt = Annotated[str | None, typer.Option(
    help="Send the key in this header instead, e.g. x-api-key (env BIFROST_API_KEY_HEADER).")]
WaitOpt = Annotated[float, typer.Option(
    "--wait", help="Seconds to wait for a sync that holds the database.")]
PricesOpt = Annotated[str | None, typer.Option(
    "--prices", help="Prices CSV (provider,model,input,output,cache_read,cache_write,"
    "batch_input,batch_output; USD per 1M tokens); its rows win over the shipped table "
    "(env BATCHLAKE_PRICES).")]
PricesOnlyOpt = Annotated[bool | None, typer.Option(
    "--prices-only/--no-prices-only",
    help="Price from the --prices file alone (no shipped table).", show_default=False)]
BodiesOpt = Annotated[bool | None, typer.Option(
    "--store-result-bodies/--no-store-result-bodies",
    help="Keep each result line's response body (redacted); by default bodies, your users' "
    "data, are not stored.", show_default=False)]


def _reading(db: str, wait: float) -> Any:
    """A read-only connection for one command, held only while it reads. A sync holding the
    file makes it wait (bounded), and it says so on stderr."""
    from batchlake.warehouse import reading

    return reading(db, lock_timeout_s=wait,
                   on_wait=lambda msg: err.print(f"waiting: {msg}", highlight=False))
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="table, csv or json.")]


_CONFIG: dict[str, str | None] = {"file": None}  # the global --config FILE


def _settings(**options: Any) -> Settings:
    """The settings in force: these options (None = not given), then the environment, then
    the config file, then the defaults (batchlake/common/config.py)."""
    from batchlake.common import resolve

    return resolve(options, config_file=_CONFIG["file"]).settings


def _db(db: str | None) -> str:
    """The database path in force for a read command."""
    return _settings(db=db).db_path


def print_frame(df: pl.DataFrame, fmt: str = "table", title: str | None = None) -> None:
    if fmt == "json":
        out.print_json(json.dumps(rpt.to_jsonable({"rows": df})["rows"], default=str))
    elif fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(df.columns)
        w.writerows([_plain(v) for v in row] for row in df.iter_rows())
        sys.stdout.write(buf.getvalue())
    elif fmt == "table":
        t = Table(title=title, title_justify="left", header_style="bold")
        for c in df.columns:
            t.add_column(c, overflow="fold")
        for row in df.iter_rows():
            t.add_row(*("" if v is None else _cell(v) for v in row))
        out.print(t)
    else:
        raise ConfigError(f"unknown format {fmt!r}; use table, csv or json")


def _plain(v: Any) -> Any:
    """HUGEINT sums arrive as Decimal(38, 0): shown (and written as JSON) as integers."""
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    return v


def _cell(v: Any) -> str:
    v = _plain(v)
    if isinstance(v, datetime):
        return f"{v:%Y-%m-%d %H:%M:%S}"
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1 else f"{v:,.1f}"
    return str(v)


@contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    """A per-provider progress line on a terminal; silent otherwise."""
    if not enabled:
        yield None
        return
    with Progress(TextColumn("{task.description:<10}"), BarColumn(bar_width=None),
                  TextColumn("{task.fields[pages]} pages, {task.completed:,.0f} objects"),
                  TimeElapsedColumn(), console=err, transient=False) as bar:
        tasks: dict[str, Any] = {}

        def update(provider: str, pages: int, fetched: int) -> None:
            if provider not in tasks:
                tasks[provider] = bar.add_task(provider, total=None, pages=0)
            bar.update(tasks[provider], completed=fetched, pages=pages)

        yield update


def run_sync(settings: Settings, *, prefect: bool | None, full_refresh: bool = False,
             batch_ids: list[str] | None = None, quiet: bool = False,
             task_runner: str = "threads", clock: datetime | None = None) -> Any:
    """Direct mode unless --prefect or PREFECT_API_URL: no temporary Prefect server for a
    one-shot run (it costs ~18 s here)."""
    use_prefect = prefect if prefect is not None else bool(os.environ.get("PREFECT_API_URL"))
    _preflight(settings)
    if use_prefect:
        from batchlake.flows import run_flow  # Prefect imports cost ~1.5 s: only when used

        return run_flow(settings, full_refresh=full_refresh, batch_ids=batch_ids,
                        dask=task_runner == "dask")
    from batchlake.pipeline import sync

    with _progress(not quiet and err.is_terminal) as progress:
        return sync(settings, full_refresh=full_refresh, batch_ids=batch_ids,
                    on_progress=progress, clock=clock)


def _preflight(settings: Settings) -> None:
    """One cheap request first: a wrong URL or key is one clear line, not N provider
    failures (and, in Prefect mode, not a flow run full of retries)."""
    from batchlake.gateway import GatewayClient

    with GatewayClient(replace(settings, max_retries=0)) as client:
        try:
            client.get_json("/v1/batches", {"provider": settings.providers[0], "limit": 1})
        except (GatewayUnreachable, GatewayAuthError):
            raise
        except GatewayError:
            pass  # e.g. one unconfigured provider: the sync reports it per provider


def _print_sync_report(rep: Any) -> None:
    df = pl.DataFrame([r.as_row() for r in rep.results])
    print_frame(df.drop("warnings") if df.get_column("warnings").str.len_chars().max() == 0
                else df, title=f"sync run {rep.run_id}")
    for r in rep.failed:
        err.print(f"[red]{r.provider} failed:[/red] {r.error}", highlight=False)


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
    from batchlake.common import resolve

    resolved = resolve({}, config_file=_CONFIG["file"])
    print_frame(pl.DataFrame(resolved.rows()), fmt,
                title=f"settings (config file: {resolved.config_file or 'none'})")


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
    lock_timeout: Annotated[float | None, typer.Option(
        help="Wait this long for another writer (default 30 s).", show_default=False)] = None,
    page_limit: Annotated[int | None, typer.Option(
        help="Objects per list request (default 100).", show_default=False)] = None,
    chunk_size: Annotated[int | None, typer.Option(
        help="Objects per load transaction (default 15000).", show_default=False)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress, no table.")] = False,
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
) -> None:
    """Sync batches from a Bifrost gateway into DuckDB.

    Example: batchlake sync --base-url http://localhost:8080 --providers openai,anthropic
    """
    settings = _settings(base_url=base_url, api_key=api_key, api_key_header=api_key_header,
                         db=db, providers=providers, insecure=insecure, store_raw=store_raw,
                         timeout=timeout, lock_timeout=lock_timeout, page_limit=page_limit,
                         chunk_size=chunk_size, publish=publish,
                         publish_storage_version=publish_storage_version, results=results,
                         results_limit=results_limit, results_budget=results_budget,
                         prices=prices, prices_only=prices_only,
                         store_result_bodies=store_result_bodies)
    if settings.publish_path:
        from batchlake.warehouse import check_storage_version, check_target

        check_target(settings.publish_path, settings.db_path)
        check_storage_version(settings.publish_storage_version)
    if task_runner not in ("threads", "dask"):
        raise ConfigError(f"unknown task runner {task_runner!r}; use threads or dask")
    rep = run_sync(settings, prefect=prefect or (task_runner == "dask") or None,
                   full_refresh=full_refresh, quiet=quiet, task_runner=task_runner)
    if not quiet:
        _print_sync_report(rep)
        if rep.published:
            err.print(f"published {rep.published}", highlight=False)
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
) -> None:
    """Retrieve one batch by id, upsert it, print it.

    Example: batchlake fetch batch_abc123 --provider openai
    """
    prov = parse_providers(provider)
    settings = _settings(base_url=base_url, api_key=api_key, api_key_header=api_key_header,
                         db=db, providers=list(prov))
    db = settings.db_path
    rep = run_sync(settings, prefect=False, batch_ids=[batch_id], quiet=True)
    if rep.failed:
        raise BatchlakeError(rep.failed[0].error or "fetch failed")
    from batchlake.warehouse import query_frame

    with _reading(db, settings.lock_timeout_s) as con:
        df = query_frame(con, "SELECT * FROM batches WHERE provider = ? AND batch_id = ?",
                         [prov[0], batch_id])
        refused = con.execute(
            "SELECT reason FROM rejects WHERE run_id = ? AND provider = ? "
            "ORDER BY batch_id IS DISTINCT FROM ? LIMIT 1",
            [rep.run_id, prov[0], batch_id]).fetchall()
    if df.height == 0:
        why = refused[0][0] if refused else "the gateway's answer could not be stored"
        raise BatchlakeError(f"batch {batch_id!r} of {prov[0]} was refused: {why} "
                             "(kept in the rejects table)")
    row = df.to_dicts()[0]
    print_frame(pl.DataFrame({"column": list(row), "value": [
        "" if v is None else str(v) for v in row.values()]}), title=f"{prov[0]} {batch_id}")


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
        "--status", help="Show the results backlog and the batches that failed, with their "
        "reasons (reads the database only).")] = False,
    budget: Annotated[float, typer.Option(
        help="Seconds to spend at most (0: until the backlog is drained).")] = 0.0,
    prices: PricesOpt = None,
    prices_only: PricesOnlyOpt = None,
    store_result_bodies: BodiesOpt = None,
    lock_timeout: Annotated[float | None, typer.Option(
        help="Wait this long for another writer (default 30 s).", show_default=False)] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Read the results of finished batches already stored (each batch once), newest
    finished first, and price them: drains the backlog a sync's budget left, with a
    progress bar on a terminal. --status shows the backlog instead.

    Example: batchlake results --providers openai --prices my-prices.csv

    Example: batchlake results --status
    """
    if status:
        from batchlake.warehouse import failing_batches, results_backlog_by_provider

        path = _db(db)
        with _reading(path, lock_timeout or 30.0) as con:
            print_frame(results_backlog_by_provider(con), fmt, title="results by provider")
            print_frame(failing_batches(con), fmt, title="batches whose results failed (newest "
                                                 "attempt first)")
        return
    settings = _settings(base_url=base_url, api_key=api_key, api_key_header=api_key_header,
                         db=db, providers=providers, prices=prices, prices_only=prices_only,
                         store_result_bodies=store_result_bodies, lock_timeout=lock_timeout)
    _preflight(settings)
    from batchlake.pipeline import read_stored_results

    with _results_progress(err.is_terminal) as progress:
        rep = read_stored_results(settings, refetch=refetch, budget_s=budget,
                                on_progress=progress)
    df = pl.DataFrame([{k: r.as_row()[k] for k in (
        "provider", "status", "results_batches", "result_lines", "results_failed",
        "results_backlog", "error")} for r in rep.results])
    print_frame(df, fmt, title=f"results run {rep.run_id}")
    for r in rep.results:
        for w in r.warnings:
            err.print(f"{r.provider}: {w}", highlight=False)
    if rep.all_failed:
        raise typer.Exit(1)


@contextmanager
def _results_progress(enabled: bool) -> Iterator[Any]:
    """A progress bar over the backlog on a terminal; silent otherwise."""
    if not enabled:
        yield None
        return
    with Progress(TextColumn("results"), BarColumn(bar_width=None),
                  TextColumn("{task.completed:,.0f}/{task.total:,.0f} batches"),
                  TimeElapsedColumn(), console=err, transient=False) as bar:
        task = bar.add_task("results", total=0)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=max(total, done))

        yield update


@app.command()
def reprice(
    db: DbOpt = None,
    prices: PricesOpt = None,
    prices_only: PricesOnlyOpt = None,
    lock_timeout: Annotated[float | None, typer.Option(
        help="Wait this long for another writer (default 30 s).", show_default=False)] = None,
) -> None:
    """Recompute every stored cost from the prices in force, without a single request.

    Example: batchlake reprice --prices my-prices.csv
    """
    settings = _settings(db=db, prices=prices, prices_only=prices_only,
                         lock_timeout=lock_timeout)
    from batchlake.pipeline import reprice_stored

    lines, unpriced = reprice_stored(settings)
    err.print(f"repriced {lines:,} result lines; {unpriced:,} unpriced (see v_unpriced_models)",
              highlight=False)


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
    import duckdb

    from batchlake.warehouse import query_frame

    if fmt not in ("table", "csv", "json"):
        raise ConfigError(f"unknown format {fmt!r}; use table, csv or json")
    with _reading(_db(db), wait) as con:
        try:
            df = query_frame(con, query)
        except duckdb.Error as e:
            raise BatchlakeError(f"query failed: {str(e).splitlines()[0]}") from None
    print_frame(df, fmt)


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
            latency_jitter=latency_jitter, retry_after_s=retry_after)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if results_route not in ("ok", "missing", "bifrost-404", "list-only"):
        raise ConfigError(f"--results-route {results_route!r} is not known; use ok, missing, "
                          "bifrost-404 or list-only")
    if big_batch:
        gw.add_big_batch(big_batch)
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
    """Start the simulated gateway, sync it into DuckDB, print a short report.

    The demo writes a fresh database each time (a simulated world is not history); it
    replaces only a file an earlier demo wrote, never one holding real syncs.

    Example: batchlake demo --db data/batchlake.duckdb
    """
    from batchlake.simulator import SimGateway

    db = _db(db)
    _fresh_demo_db(db)
    with SimGateway(batches, seed=seed, future_share=0.1) as gw:
        settings = Settings(base_url=gw.base_url, db_path=db)
        rep = run_sync(settings, prefect=prefect)
        _print_sync_report(rep)
        gw.advance(3 * 3600)  # three hours later: some batches moved on
        # … for the run's clock too (the polling backoff counts the hours since last seen)
        rep = run_sync(settings, prefect=prefect, quiet=True,
                       clock=datetime.now(UTC) + timedelta(hours=3))
    out.print(f"second sync, 3 simulated hours later: "
              f"{sum(r.counts.updated for r in rep.results)} batches changed, "
              f"{sum(r.counts.inserted for r in rep.results)} new, "
              f"{sum(r.refetched for r in rep.results)} followed by id")
    from batchlake.warehouse import connect

    con = connect(db)
    try:
        con.execute("CREATE TABLE IF NOT EXISTS demo_info AS SELECT now() AS created_at")
    finally:
        con.close()
    _print_report(db, None, None, "table")
    out.print(f"\nDatabase: {db}. Try: batchlake sql \"SELECT * FROM v_daily_summary\" "
              f"--db {db}")


def _fresh_demo_db(db: str) -> None:
    """Remove an earlier demo's file; refuse to touch a database with real syncs."""
    path = Path(db)
    if not path.exists():
        return
    with _reading(db, 30.0) as con:
        tables = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables").fetchall()}
    if tables and "demo_info" not in tables:
        raise ConfigError(f"{db} holds real syncs; the demo writes a fresh database: "
                          "pass another --db")
    path.unlink()
    Path(f"{db}.wal").unlink(missing_ok=True)


def _print_report(db: str, since: str | None, provider: str | None, fmt: str,
                  html_path: str | None = None, wait: float = 60.0) -> None:
    if fmt not in ("table", "csv", "json"):
        raise ConfigError(f"unknown format {fmt!r}; use table, csv or json")
    window = rpt.parse_duration(since) if since else None
    if provider:
        provider = parse_providers(provider)[0]
    with _reading(db, wait) as con:
        sections = rpt.build(con, window, provider)
        status = rpt.status_by_provider(con, window, provider)
    if html_path:
        Path(html_path).write_text(rpt.to_html(sections, status, "batchlake report"),
                                   encoding="utf-8")
        err.print(f"wrote {html_path}")
    if fmt == "json":
        sys.stdout.write(json.dumps(rpt.to_jsonable(sections), default=str, indent=1) + "\n")
        return
    for name, df in sections.items():
        print_frame(df.head(20) if name == "overdue" else df, fmt,
                    title=name.replace("_", " ").title()
                    + (f" (20 of {df.height})" if name == "overdue" and df.height > 20 else ""))


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
    """Summary, durations, top errors, cache and overdue batches.

    Example: batchlake report --since 7d --format json
    """
    _print_report(_db(db), since, provider, fmt, html, wait)


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
    if fmt not in ("table", "csv", "json"):
        raise ConfigError(f"unknown format {fmt!r}; use table, csv or json")
    window = rpt.parse_duration(older_than) if older_than else None
    with _reading(_db(db), wait) as con:
        df = rpt.overdue(con, parse_providers(provider)[0] if provider else None, window)
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
    from batchlake.transforms import markdown_docs

    sys.stdout.write(markdown_docs() + "\n")


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
    from batchlake.warehouse import export_parquet as run_export

    written = run_export(_db(db), directory, tuple(p.strip() for p in partition_by.split(",")),
                         lock_timeout_s=wait,
                         on_wait=lambda msg: err.print(f"waiting: {msg}", highlight=False))
    err.print(f"wrote {written} partition files under {directory}")


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


def main() -> None:
    """Entry point: expected errors become one line and an exit code."""
    # The CLI prints its own summary; library logs show only real errors unless asked.
    level = os.environ.get("BATCHLAKE_LOG_LEVEL", "").upper()
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s",
                        level=level or logging.WARNING)
    logging.getLogger("batchlake").setLevel(level or logging.ERROR)
    try:
        rv = app(standalone_mode=False)
    except BatchlakeError as e:
        err.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
