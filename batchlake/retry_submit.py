"""``batchlake retry --submit``: each retry file uploaded and made a batch, through the gateway.

The only writes batchlake makes to a gateway, and only when asked in so many words. Each step
is recorded before and after it happens (retry_batches.submit_state): 'uploading' before the
upload, 'submitted' with the new batch's id once it exists. A submit that stops between the
two ('uploading': the batch may or may not exist) keeps its requests out of the next retry
until a sync shows the batch (its metadata names the run) or ``--force`` says to go on.

The new batch keeps the source's endpoint, completion window and metadata, plus
``batchlake_retry_of`` (the source batch) and ``batchlake_retry_run`` (this run). Per
provider (bifrost-files.md §3): OpenAI, Azure and Gemini upload the file and create the batch
from its id; Bedrock uploads to S3 (the bucket of the source's input) and needs an output
location; Anthropic takes the requests inline (its batches carry no metadata, so its lineage
is batchlake's own record).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from batchlake.common import BatchlakeError, GatewayError, GatewayUnreachable
from batchlake.gateway import FilesClient
from batchlake.retry_files import RetryFile, read_chunks
from batchlake.transforms import FORMATS, LINEAGE_KEY, RUN_KEY, split_lines
from batchlake.warehouse import FileVisits, StoredBatch, retry_writer, set_submit_state

MAX_METADATA_KEYS = 16  # OpenAI's limit; the lineage keys come first


def lineage_metadata(source: StoredBatch | None, source_id: str, run_id: str
                     ) -> dict[str, str]:
    """The new batch's metadata: the lineage keys, then the source's own (as many as fit)."""
    md = {LINEAGE_KEY: source_id, RUN_KEY: run_id}
    try:
        theirs = orjson.loads(source.metadata) if source and source.metadata else {}
    except orjson.JSONDecodeError:
        theirs = {}
    for k, v in (theirs.items() if isinstance(theirs, dict) else []):
        if len(md) >= MAX_METADATA_KEYS:
            break
        if isinstance(k, str) and isinstance(v, str) and not k.startswith("batchlake_retry"):
            md[k] = v
    return md


def bifrost_model(provider: str, model: str | None) -> str:
    """``provider/model`` as Bifrost's batch create reads it (older gateways take the
    provider only from it); Gemini's resource names lose their path (Bifrost builds
    ``models/{model}:batchGenerateContent`` itself)."""
    if model and provider == "gemini":
        model = model.rsplit("/", 1)[-1]
    return f"{provider}/{model or ''}"


def _s3_bucket(uri: str | None) -> str | None:
    if uri and uri.startswith("s3://"):
        return uri[5:].split("/", 1)[0] or None
    return None


def _create(client: FilesClient, f: RetryFile, source: StoredBatch | None, run_id: str, *,
            role_arn: str | None, output_s3_uri: str | None,
            on_upload: Callable[[str], None]) -> dict[str, Any]:
    p = f.provider
    payload: dict[str, Any] = {
        "model": bifrost_model(p, f.model), "completion_window":
            (source.completion_window if source else None) or "24h",
        "metadata": lineage_metadata(source, f.source_batch_id, run_id)}
    if f.endpoint:
        payload["endpoint"] = f.endpoint
    if FORMATS.get(p) == "anthropic":
        head = orjson.dumps(payload)[:-1] + b',"requests":['
        body = head + b",".join(split_lines(read_chunks(f.path))) + b"]}"
        return client.create_batch(p, body)
    fields: dict[str, str] = {}
    if p == "bedrock":
        bucket = _s3_bucket(source.input_file_id if source else None)
        if bucket:
            fields = {"s3_bucket": bucket, "s3_prefix": "batchlake-retry/"}
        payload["output_s3_uri"] = output_s3_uri
        if role_arn:
            payload["role_arn"] = role_arn
    uploaded = client.upload_file(p, f.path, fields=fields)
    f.uploaded_file_id = str(uploaded["id"])
    on_upload(f.uploaded_file_id)
    payload["input_file_id"] = f.uploaded_file_id
    return client.create_batch(p, payload)


def submit_files(client: FilesClient, run_id: str, files: list[RetryFile],
                 stored: dict[str, StoredBatch], *, lake: FileVisits,
                 role_arn: str | None, output_s3_uri: str | None,
                 say: Callable[[str], None]) -> None:
    """Upload each of a run's files and create its batch, recording each step; stop at the
    first failure with one line (the batches made before it stay recorded)."""
    for f in files:
        with retry_writer(lake) as con:
            set_submit_state(con, run_id, f.name, "uploading")

        def uploaded(file_id: str, f: RetryFile = f) -> None:
            say(f"uploaded {f.name} ({f.requests:,} requests) as {file_id}")
            with retry_writer(lake) as con:
                set_submit_state(con, run_id, f.name, "uploading", uploaded_file_id=file_id)

        try:
            batch = _create(client, f, stored.get(f.source_batch_id), run_id,
                            role_arn=role_arn, output_s3_uri=output_s3_uri, on_upload=uploaded)
        except GatewayError as e:
            # No batch can exist when the upload failed, the gateway refused the create (an
            # answer below 500) or never heard it (no connection). Else (5xx, no answer) it
            # may: 'uploading' keeps the file in doubt (see the docstring).
            in_create = f.uploaded_file_id is not None or FORMATS.get(f.provider) == "anthropic"
            made_none = (not in_create or isinstance(e, GatewayUnreachable)
                         or (e.status is not None and e.status < 500))
            if made_none:
                with retry_writer(lake) as con:
                    set_submit_state(con, run_id, f.name, "failed", error=str(e)[:500])
            doubt = "" if made_none else (" (the gateway may have made the batch: run "
                                          "batchlake sync to see it before submitting again)")
            raise BatchlakeError(f"submitting {f.name} failed: {e}{doubt}") from None
        f.retry_batch_id = str(batch["id"])
        with retry_writer(lake) as con:
            set_submit_state(con, run_id, f.name, "submitted", retry_batch_id=f.retry_batch_id,
                             submitted_at=datetime.now(UTC))
        say(f"created {f.provider} batch {f.retry_batch_id} from {f.name} "
            f"({f.requests:,} requests, retry of {f.source_batch_id})")
