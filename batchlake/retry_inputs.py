"""Where a retried chain's input comes from when the gateway has it: ``GET
/v1/files/{id}/content`` of the chain's first batch, streamed to disk (gateway/files_api.py),
or why the gateway cannot give it (Anthropic's requests are inline; Gemini's file route answers
Bifrost's 500; any route may fail). Bedrock batches, whose listing names no model, are
retrieved once for it: a job is one model, and its retry file and new job need it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from batchlake.common import GatewayError
from batchlake.gateway import FilesClient, InputUnavailable
from batchlake.results_reader import MODEL_BY_RETRIEVE, model_requested
from batchlake.retry_plan import Chain
from batchlake.transforms import INLINE_PROVIDERS
from batchlake.warehouse import StoredBatch


def fetch_input(client: FilesClient, provider: str, chain: Chain, dest: Path
                ) -> tuple[str | None, bool]:
    """The chain's input to ``dest`` (on a pool thread): (None, _), or why the gateway cannot
    and whether that holds for every batch of the provider (no file route for it)."""
    if provider in MODEL_BY_RETRIEVE and chain.root.model is None:
        chain.root = replace(chain.root, model=model_by_retrieve(client, provider, chain.root))
    root = chain.root
    return gateway_input(client, provider, root.batch_id, root.input_file_id, dest)


def model_by_retrieve(client: FilesClient, provider: str, root: StoredBatch) -> str | None:
    """A Bedrock batch's model, which its listing does not name (a job is one model: the
    files and the new job need it): ``GET /v1/batches/{id}`` once."""
    try:
        return model_requested(client.retrieve_batch(provider, root.batch_id))
    except GatewayError:
        return None


def gateway_input(client: FilesClient, provider: str, batch_id: str, file_id: str | None,
                  dest: Path) -> tuple[str | None, bool]:
    """Download a batch's input to ``dest``: (None, _), or why the gateway cannot give it and
    whether that holds for the provider's every batch."""
    if provider in INLINE_PROVIDERS:
        return (f"{provider} batches take their requests inline: the gateway has no input "
                "file"), True
    if not file_id:
        return "the batch names no input file", False
    try:
        client.download_file(provider, file_id, dest)
    except InputUnavailable as e:
        return str(e), True
    except GatewayError as e:
        return str(e), False
    return None, False
