"""Bifrost's file routes and batch creation on the simulated gateway:
``GET /v1/files/{file_id}/content``, ``POST /v1/files`` (multipart) and ``POST /v1/batches``.
The answers come from the gateway's file store (simulator/file_store.py); here is the HTTP:
the multipart form read, the body sent with its Content-Length, and the injected faults of
the content route (a reset or a body cut short half way, statuses, delays) under its route
name ``file_content`` (and ``file_upload``, ``batch_create`` for the writes).

They run after the gateway's own checks (simulator/http_handler.py): the key always, the
``provider`` parameter for the content route (Bifrost takes an upload's or a creation's
provider from elsewhere too: see each function).
"""

from __future__ import annotations

from email.parser import BytesParser
from email.policy import HTTP
from urllib.parse import unquote

from batchlake.simulator.exchange import Exchange
from batchlake.simulator.fault_answers import answer_fault, send_body
from batchlake.simulator.file_store import Answer
from batchlake.simulator.injected_faults import BODY_FAULTS


def _answer(ex: Exchange, ans: Answer) -> None:
    ex.send(ans.status, ans.body, content_type=ans.content_type)


def file_content(ex: Exchange) -> None:
    """A file's raw bytes (``Content-Length`` set), or Bifrost's error for the provider."""
    gw, provider = ex.gateway, ex.provider or ""
    ans = gw.files.content(gw, provider, unquote(ex.params["file_id"]))
    broken = (gw.take_fault(provider, "file_content", BODY_FAULTS)
              if ans.status == 200 else None)
    if broken is None and answer_fault(ex, provider, "file_content", body_route=True):
        return
    if ans.status != 200:
        _answer(ex, ans)
        return
    send_body(ex, ans.body, broken, ans.content_type)


def _form(ex: Exchange) -> tuple[dict[str, str], tuple[str, bytes] | None]:
    """A multipart/form-data body: its text fields, and its file (name, bytes)."""
    head = f"Content-Type: {ex.handler.headers.get('Content-Type') or ''}\r\n\r\n".encode()
    msg = BytesParser(policy=HTTP).parsebytes(head + ex.body)
    fields: dict[str, str] = {}
    file: tuple[str, bytes] | None = None
    if not msg.is_multipart():
        return fields, file
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(data, bytes):
            continue
        if name == "file":
            file = (part.get_filename() or "file.jsonl", data)
        else:
            fields[name] = data.decode("utf-8", "replace")
    return fields, file


def file_upload(ex: Exchange) -> None:
    """``POST /v1/files``: the provider from ``?provider=``, the ``x-model-provider`` header
    or the form's ``provider`` field, in that order (Bifrost's)."""
    gw = ex.gateway
    fields, file = _form(ex)
    provider = (ex.provider or ex.handler.headers.get("x-model-provider")
                or fields.get("provider"))
    if not provider:
        ex.send_error(400, "provider query parameter or x-model-provider header is required",
                      bifrost=False)
        return
    if provider not in gw.providers:
        ex.send_error(400, f"provider {provider} is not configured on this gateway")
        return
    if answer_fault(ex, provider, "file_upload"):
        return
    _answer(ex, gw.files.upload(gw, provider, fields, file))


def batch_create(ex: Exchange) -> None:
    """``POST /v1/batches``: the provider from the body's ``model`` (``provider/model``),
    else ``?provider=``, else the ``x-model-provider`` header."""
    gw = ex.gateway
    hint = ex.provider or ex.handler.headers.get("x-model-provider")
    if answer_fault(ex, hint or "", "batch_create"):
        return
    _answer(ex, gw.files.create_batch(gw, hint, ex.body))
