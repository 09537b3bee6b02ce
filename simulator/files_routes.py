"""Bifrost's file routes and batch creation on the simulated gateway:
``GET /v1/files/{file_id}/content``, ``POST /v1/files`` (multipart) and ``POST /v1/batches``.
The answers come from the gateway's file store (simulator/file_store.py); here is the HTTP:
the multipart form read, the body sent with its Content-Length, and the injected faults of
the content route (a reset or a body cut short half way, statuses, delays) under the route
name ``file_content``."""

from __future__ import annotations

from email.parser import BytesParser
from email.policy import HTTP
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote

if TYPE_CHECKING:
    from batchlake.simulator.file_store import Answer
    from batchlake.simulator.server import SimGateway

CHUNK = 1 << 20


class Wire(Protocol):
    """What a route needs of the request it answers."""

    gateway: SimGateway
    body: bytes

    def arg(self, name: str) -> str | None: ...
    def header(self, name: str) -> str | None: ...
    def send(self, status: int, body: bytes, content_type: str = ...) -> None: ...
    def begin(self, status: int, length: int, content_type: str = ...) -> None: ...
    def write(self, data: bytes | memoryview) -> None: ...
    def reset(self) -> None: ...
    def close_after(self) -> None: ...
    def fault(self, provider: str, endpoint: str) -> bool: ...
    def broken(self, provider: str, endpoint: str) -> str | None: ...


def _answer(ex: Wire, ans: Answer) -> None:
    ex.send(ans.status, ans.body, ans.content_type)


def file_content(ex: Wire, file_id: str) -> None:
    """A file's raw bytes (``Content-Length`` set), or Bifrost's error for the provider."""
    gw, provider = ex.gateway, ex.arg("provider") or ""
    broken = ex.broken(provider, "file_content")
    if broken is None and ex.fault(provider, "file_content"):
        return
    ans = gw.files.content(gw, provider, unquote(file_id))
    if ans.status != 200:
        _answer(ex, ans)
        return
    body = ans.body
    ex.begin(200, len(body), ans.content_type)
    end = len(body) // 2 if broken is not None else len(body)
    view = memoryview(body)
    for start in range(0, end, CHUNK):
        ex.write(view[start:min(end, start + CHUNK)])
    if broken == "reset":
        ex.reset()
    elif broken is not None:
        ex.close_after()


def _form(ex: Wire) -> tuple[dict[str, str], tuple[str, bytes] | None]:
    """A multipart/form-data body: its text fields, and its file (name, bytes)."""
    head = f"Content-Type: {ex.header('Content-Type') or ''}\r\n\r\n".encode()
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
        filename = part.get_filename()
        if name == "file":
            file = (filename or "file.jsonl", data)
        else:
            fields[name] = data.decode("utf-8", "replace")
    return fields, file


def file_upload(ex: Wire) -> None:
    """``POST /v1/files``: the provider from ``?provider=``, the ``x-model-provider`` header
    or the form's ``provider`` field, in that order (Bifrost's)."""
    gw = ex.gateway
    fields, file = _form(ex)
    provider = ex.arg("provider") or ex.header("x-model-provider") or fields.get("provider")
    if not provider:
        ex.send(400, b'{"is_bifrost_error":false,"error":{"message":"provider query parameter '
                b'or x-model-provider header is required"}}')
        return
    if ex.fault(provider, "file_upload"):
        return
    _answer(ex, gw.files.upload(gw, provider, fields, file))


def batch_create(ex: Wire) -> None:
    """``POST /v1/batches``: the provider from the body's ``model`` (``provider/model``),
    else ``?provider=``, else the ``x-model-provider`` header."""
    gw = ex.gateway
    hint = ex.arg("provider") or ex.header("x-model-provider")
    if ex.fault(hint or "", "batch_create"):
        return
    _answer(ex, gw.files.create_batch(gw, hint, ex.body))
