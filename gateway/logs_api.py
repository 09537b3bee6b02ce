"""Bifrost's logs API, where Bifrost 2 keeps one cost row per settled batch: ``GET
/api/logs/{id}`` (one row; 404 "log not found" otherwise) and ``GET /api/logs`` (a page of
rows, filtered by object, provider and time; ``limit`` at most 1000, ``offset`` paging).

``/api/*`` is Bifrost's management API: when its dashboard auth is on
(``auth_config.is_enabled``) it takes the admin username and password as Basic auth (or a
session token), never an inference or virtual key (401 "Unauthorized";
``transports/bifrost-http/handlers/middlewares.go``). So requests here carry the admin
credentials (``BIFROST_ADMIN_USER``/``BIFROST_ADMIN_PASSWORD``) when they are set, else the
gateway's own credentials (what a proxy in front may want; Bifrost without auth takes anything).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from batchlake.common import (
    Auth,
    GatewayAuthError,
    GatewayError,
    GatewayNotFound,
    Settings,
    redact_url,
)
from batchlake.gateway.client import GatewayClient
from batchlake.transforms import cost_log_id

LOGS = "/api/logs"
PAGE = 1000  # Bifrost's cap on `limit` ("limit cannot exceed 1000")
MAX_PAGES = 1000
_NOT_JSON = object()


class LogsApiAuthError(GatewayAuthError):
    """The gateway refused the logs API the credentials sent (401/403)."""


@dataclass(frozen=True)
class LogsProbe:
    """Whether the gateway has the logs API, and how many batch cost rows it holds."""

    available: bool
    rows: int | None = None  # total_count of batch_results rows (None: not said)
    why: str | None = None  # the one line, when it has no logs API


def _loose_json(body: bytes) -> Any:
    """A body as JSON, or a marker when it is not (a UI page, a proxy's text): that answer
    is not worth the retries the client gives a broken body."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return _NOT_JSON


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class LogsApi:
    """Reads batch cost rows from a Bifrost gateway's logs API."""

    def __init__(self, settings: Settings) -> None:
        auth = settings.auth
        self.admin = auth.admin_user is not None or auth.admin_password is not None
        if self.admin:
            auth = Auth(basic_user=auth.admin_user or "",
                        basic_password=auth.admin_password or "")
        self._client = GatewayClient(replace(settings, auth=auth))
        self._where = redact_url(settings.base_url)
        self.requests = 0  # requests sent (retries not counted)
        self._count = threading.Lock()

    def __enter__(self) -> LogsApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        with self._count:
            self.requests += 1
        try:
            return self._client.get_json(path, params, _loose_json)
        except GatewayAuthError as e:
            raise self._refused(e.status or 401) from None

    def _refused(self, status: int) -> LogsApiAuthError:
        if status == 403:
            return LogsApiAuthError(
                "the gateway refused its logs API (403 Forbidden): the credentials lack the "
                "Logs:View permission (Bifrost Enterprise); grant it, or use the admin "
                "user's BIFROST_ADMIN_USER / BIFROST_ADMIN_PASSWORD", status=403)
        if self.admin:
            return LogsApiAuthError(
                "the gateway refused the admin credentials on its logs API (401 "
                "Unauthorized); check BIFROST_ADMIN_USER and BIFROST_ADMIN_PASSWORD (or "
                "admin_user / admin_password in the config file)", status=401)
        return LogsApiAuthError(
            "the gateway's logs API needs Bifrost's admin credentials (401 Unauthorized: "
            "/api/* takes the dashboard's admin user, not an API or virtual key); set "
            "BIFROST_ADMIN_USER and BIFROST_ADMIN_PASSWORD (or admin_user / admin_password "
            "in the config file)", status=401)

    def probe(self) -> LogsProbe:
        """One request: whether ``GET /api/logs`` answers as Bifrost's logs API does. A 404
        or 405 (with or without Bifrost's error body), or an answer that is not its list, is
        a gateway without it (Bifrost 1.x, or logging off)."""
        try:
            page = self._get(LOGS, {"objects": "batch_results", "limit": 1})
        except GatewayError as e:
            if isinstance(e, LogsApiAuthError) or e.status not in (404, 405):
                raise
            return LogsProbe(False, why=(
                f"the gateway at {self._where} has no logs API (GET {LOGS} answered "
                f"{e.status}): no batch costs to compare (Bifrost 2 keeps them; 1.x, or a "
                "gateway with logging off, does not)"))
        if not isinstance(page, dict) or not isinstance(page.get("logs"), list):
            return LogsProbe(False, why=(
                f"the gateway at {self._where} answered GET {LOGS} with something that is "
                "not Bifrost's logs list: no batch costs to compare"))
        return LogsProbe(True, rows=_total(page))

    def cost_row(self, provider: str, batch_id: str) -> Any | None:
        """The batch's cost row by its id (UUIDv5); None when the gateway has no such row."""
        try:
            row = self._get(f"{LOGS}/{cost_log_id(provider, batch_id)}", {})
        except GatewayNotFound:
            return None
        return None if row is _NOT_JSON else row

    def cost_rows(self, keys: Iterable[tuple[str, str]]
                  ) -> Iterator[tuple[tuple[str, str], Any]]:
        """``cost_row`` of many batches, ``settings.concurrency`` at a time; yields (key, row
        or None or the GatewayError) in input order."""
        def one(key: tuple[str, str]) -> tuple[tuple[str, str], Any]:
            try:
                return key, self.cost_row(*key)
            except LogsApiAuthError:
                raise
            except GatewayError as e:
                return key, e

        with ThreadPoolExecutor(max_workers=self._client.settings.concurrency,
                                thread_name_prefix="logs") as pool:
            yield from pool.map(one, keys)

    def batch_rows(self, provider: str, start: datetime, end: datetime) -> Iterator[Any]:
        """Every ``batch_results`` row of ``provider`` logged in [start, end], oldest first
        (echo rows included: the caller tells them apart), 1,000 a page."""
        offset = 0
        for _ in range(MAX_PAGES):
            page = self._get(LOGS, {
                "objects": "batch_results", "providers": provider,
                "start_time": _rfc3339(start), "end_time": _rfc3339(end), "limit": PAGE,
                "offset": offset, "sort_by": "timestamp", "order": "asc"})
            logs = page.get("logs") if isinstance(page, dict) else None
            if not isinstance(logs, list) or not logs:
                return
            yield from logs
            offset += len(logs)
            total = _total(page)
            if total is not None and offset >= total:
                return


def _total(page: dict[str, Any]) -> int | None:
    """The list's ``pagination.total_count``, where it gives one."""
    pagination = page.get("pagination")
    total = pagination.get("total_count") if isinstance(pagination, dict) else None
    return total if isinstance(total, int) else None
