"""The command line's shared options, defined once (typer ``Annotated`` types): every command
that takes a database, a gateway or prices takes them with the same names, help and
environment variables. Each option's default and meaning is documented in its help."""

from __future__ import annotations

from typing import Annotated

import typer

from batchlake.common import DEFAULT_DB

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
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="table, csv or json.")]
LockTimeoutOpt = Annotated[float | None, typer.Option(
    help="Wait this long for another writer (default 30 s).", show_default=False)]
