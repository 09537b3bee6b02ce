"""The simulated gateway and the demo: ``batchlake gateway`` and ``batchlake demo``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from batchlake import commands
from batchlake.cli_app import app, db_in_force
from batchlake.cli_options import DbOpt
from batchlake.cli_render import (
    err,
    on_wait,
    out,
    print_report,
    print_sync_report,
)
from batchlake.common import ConfigError, parse_providers


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

    path = db_in_force(db)
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
