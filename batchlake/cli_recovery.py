"""The commands that act on what a sync found: ``retry`` (the failed requests, back as
batches) and ``reconcile`` (the gateway's bill beside batchlake's)."""

from __future__ import annotations

from typing import Annotated

import typer

from batchlake.cli_app import CONFIG, app
from batchlake.cli_options import (
    ApiKeyHeaderOpt,
    ApiKeyOpt,
    BaseUrlOpt,
    DbOpt,
    FormatOpt,
    LockTimeoutOpt,
    ProvidersOpt,
)
from batchlake.cli_render import (
    check_format,
    print_reconcile,
    print_retry_event,
    print_retry_report,
)


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
    check_format(fmt, ("text", "json"))
    from batchlake.retrying import retry

    rep = retry(provider, out=out, batch=batch, since=since, error_code=error_code,
                inputs=inputs, submit=submit, force=force, role_arn=role_arn,
                output_s3_uri=output_s3_uri, base_url=base_url, db=db, api_key=api_key,
                api_key_header=api_key_header, lock_timeout=lock_timeout,
                config=CONFIG["file"], on_event=print_retry_event)
    print_retry_report(rep, fmt)


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
                    lock_timeout=lock_timeout, config=CONFIG["file"])
    print_reconcile(rep, fmt)
