"""Bifrost's unified file routes and batch creation, over the gateway client's retries.

- ``GET /v1/files/{id}/content?provider=P``: a file's raw bytes (a batch's input), streamed to
  a file on disk as they arrive, never held in memory; the length is checked against
  Content-Length, and a body cut short is read again from the start (with the client's
  backoff), never half used.
- ``POST /v1/files?provider=P`` (multipart ``file``, ``purpose=batch``, ``provider``) and
  ``POST /v1/batches?provider=P`` (JSON): the only writes batchlake ever makes to a gateway,
  and only when asked (``batchlake retry --submit``).

Bifrost answers Gemini's file content with a 500 that no retry changes ("Gemini Files API
doesn't support direct content download"), Vertex's with a 400 ``unsupported_operation``:
both are ``InputUnavailable`` at once, not a minute of retries.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote

import httpx
import orjson

from batchlake.common import GatewayBadResponse, GatewayError
from batchlake.gateway.answers import Retryable, parse_retry_after, raise_for_status
from batchlake.gateway.client import GatewayClient

log = logging.getLogger("batchlake.gateway")
CONTENT_CHUNK = 1 << 18  # bytes written to disk at a time
# Bifrost's answers for a provider whose files it cannot hand back (bifrost-files.md §2).
_UNSUPPORTED = ("doesn't support direct content download", "not supported by",
                "unsupported_operation", "does not support")


class InputUnavailable(GatewayError):
    """The gateway cannot return this file, and asking again will not change it."""


def _message(body: bytes) -> tuple[str, str]:
    """Bifrost's error message and code from an error body (else an excerpt, '')."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace").strip()[:200], ""
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or "")[:300], str(err.get("code") or "")
    return str(data)[:200], ""


class FilesClient(GatewayClient):
    """The gateway client with the file and batch-creation routes.

    >>> with FilesClient(settings) as gw:
    ...     size = gw.download_file("openai", "file-abc", Path("/tmp/input.jsonl"))
    """

    def __enter__(self) -> FilesClient:
        return self

    # -- reading -------------------------------------------------------------------------
    def download_file(self, provider: str, file_id: str, dest: Path) -> int:
        """``GET /v1/files/{id}/content?provider=…`` into ``dest`` (replaced); the bytes
        written. Transient faults and bodies cut short are tried again from the start; the
        file is whole when this returns, or removed when it raises."""
        path = f"/v1/files/{quote(file_id, safe='')}/content"
        try:
            return self._with_retries(lambda: self._download_once(provider, path, file_id,
                                                                   dest))
        except BaseException:
            dest.unlink(missing_ok=True)
            raise

    def _download_once(self, provider: str, path: str, file_id: str, dest: Path) -> int:
        def refuse(status: int, body: bytes, retry_after: str | None) -> NoReturn:
            self._refuse(provider, file_id, status, body, retry_after)

        resp = self._open_once(path, {"provider": provider}, refuse)
        try:
            expected = resp.headers.get("Content-Length")
            written = 0
            with open(dest, "wb") as f:
                try:
                    for chunk in resp.iter_bytes(CONTENT_CHUNK):
                        f.write(chunk)
                        written += len(chunk)
                except httpx.TransportError as e:
                    raise Retryable(GatewayBadResponse(
                        f"the input file {file_id} broke off after {written:,} bytes "
                        f"({type(e).__name__})")) from None
        finally:
            resp.close()
        if expected is not None and expected.isdigit() and int(expected) != written:
            raise Retryable(GatewayBadResponse(
                f"the input file {file_id} came short: {written:,} of {int(expected):,} bytes"))
        return written

    def _refuse(self, provider: str, file_id: str, status: int, body: bytes,
                retry_after: str | None) -> NoReturn:
        message, code = _message(body)
        if (status in (400, 500, 501) and any(s in f"{message} {code}" for s in _UNSUPPORTED)):
            raise InputUnavailable(
                f"the gateway cannot return {provider} file {file_id} ({status}: {message})",
                status=status)
        raise_for_status(status, body, retry_after)

    # -- writing (only when the user asks: batchlake retry --submit) ---------------------
    def upload_file(self, provider: str, path: Path, *, purpose: str = "batch",
                    fields: dict[str, str] | None = None) -> dict[str, Any]:
        """``POST /v1/files?provider=…``: upload ``path`` (multipart ``file``, ``purpose``,
        ``provider`` and ``fields``); the gateway's file object. Retried on 429/5xx and
        broken connections: a second upload at worst leaves an unused file, never a batch."""
        data = {"purpose": purpose, "provider": provider, **(fields or {})}

        def once() -> dict[str, Any]:
            with open(path, "rb") as f:
                request = self._http.build_request(
                    "POST", "/v1/files", params={"provider": provider}, data=data,
                    files={"file": (path.name, f, "application/jsonl")})
                return self._send_json(request, "upload", may_repeat=True)

        answer: dict[str, Any] = self._with_retries(once)
        return answer

    def create_batch(self, provider: str, payload: dict[str, Any] | bytes) -> dict[str, Any]:
        """``POST /v1/batches?provider=…`` with ``payload`` (a dict, or JSON bytes); the
        created batch. Asked again only where no batch can have been made (a 429, a
        connection that never opened); any other failure may have made one, and is raised."""
        content = payload if isinstance(payload, bytes) else orjson.dumps(payload)

        def once() -> dict[str, Any]:
            request = self._http.build_request(
                "POST", "/v1/batches", params={"provider": provider}, content=content,
                headers={"Content-Type": "application/json", "x-model-provider": provider})
            return self._send_json(request, "batch create", may_repeat=False)

        answer: dict[str, Any] = self._with_retries(once)
        return answer

    def _send_json(self, request: httpx.Request, what: str, *, may_repeat: bool
                   ) -> dict[str, Any]:
        """Send a write and read its JSON answer. ``may_repeat``: a failure after the
        request went out may be tried again (an upload); else only one before it did."""
        try:
            resp = self._http.send(request)
        except httpx.ConnectError as e:  # never sent
            raise self._transport_error(e) from None
        except httpx.TransportError as e:
            err = self._transport_error(e)
            if may_repeat or not isinstance(err, Retryable):
                raise err from None
            raise GatewayError(f"the {what} got no answer ({err.error}); the gateway may have "
                               "done it") from None
        self._reached = True
        body = resp.content
        status = resp.status_code
        if status == 429:
            raise Retryable(GatewayError(f"gateway answered 429 to the {what}", status=429),
                             parse_retry_after(resp.headers.get("Retry-After")))
        if status >= 300:
            try:
                raise_for_status(status, body, resp.headers.get("Retry-After"))
            except Retryable as e:
                if may_repeat:
                    raise
                raise e.error from None
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise GatewayBadResponse(f"the gateway's answer to the {what} is not JSON",
                                     payload=body[:10_000]) from None
        if not isinstance(answer, dict) or not isinstance(answer.get("id"), str):
            raise GatewayBadResponse(f"the gateway's answer to the {what} has no id",
                                     payload=body[:10_000])
        return answer
