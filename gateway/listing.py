"""Listing a provider's batches: ``GET /v1/batches`` newest first, page by page, following
``next_cursor`` (else ``last_id``) while ``has_more``, and stopping, with a warning, where a
gateway would loop. The requests themselves go through the client (gateway/client.py)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from batchlake.common import GatewayBadResponse, Settings
from batchlake.transforms import ListPage, NotTyped, decode_page, oldest_created, record_ids

MAX_EMPTY_PAGES = 20  # consecutive empty pages with has_more before we call it a loop
# GatewayClient.get_json: a GET's body, decoded, after the client's retries
GetJson = Callable[[str, dict[str, Any], Callable[[bytes], Any]], Any]


@dataclass
class Page:
    """One list page as received: its objects as dicts, or (``typed``) as the typed records
    of ``transforms/typed.py`` when the page was asked for so and every object fits them."""

    number: int
    objects: list[Any]
    has_more: bool
    cursor: str | None  # what we will send as `after` next
    typed: bool = False

    def ids(self) -> list[Any]:
        if self.typed:
            return record_ids(self.objects)
        return [o.get("id") for o in self.objects if isinstance(o, dict)]

    def oldest_created(self) -> int | None:
        """The oldest positive integer created_at of the page (None if there is none)."""
        if self.typed:
            return oldest_created(self.objects)
        vals = [o.get("created_at") for o in self.objects if type(o) is dict]
        ints = [v for v in vals if type(v) is int and v > 0]
        return min(ints) if ints else None


def decode_list_page(body: bytes, keep_raw: bool = True) -> Any:
    """A list page as typed records where it fits them (validated in C, raw payloads left
    undecoded), else as plain JSON for the exact per-object path."""
    try:
        return decode_page(body, keep_raw=keep_raw)
    except NotTyped:
        return orjson.loads(body)


@dataclass
class ListingReport:
    """What a listing noticed: pages read, and anomalies that stopped or bent it."""

    pages: int = 0
    objects: int = 0
    duplicate_ids: int = 0
    warnings: list[str] = field(default_factory=list)
    complete: bool = False  # the listing reached its natural end (or the caller stopped it)


def list_pages(get_json: GetJson, settings: Settings, provider: str, *,
               report: ListingReport | None = None, after: str | None = None,
               typed: bool = False) -> Iterator[Page]:
    """Page through ``GET /v1/batches`` newest first. ``typed``: pages whose objects all
    fit ``transforms/typed.py`` come as typed records (``Page.typed``), others as dicts.

    Follows ``next_cursor`` when the gateway sends one, else ``last_id``, while
    ``has_more``. Stops (with a warning in ``report``) on a cursor seen before, on a run
    of empty pages, when there is no cursor to follow, or at ``max_pages``.
    """
    rep = report if report is not None else ListingReport()
    limit = settings.page_limit
    seen_cursors: set[str] = set()
    prev_ids: set[str] = set()
    empty_run = 0
    cursor = after
    while True:
        if rep.pages >= settings.max_pages:
            rep.warnings.append(f"stopped at max_pages={settings.max_pages}")
            return
        params: dict[str, Any] = {"provider": provider, "limit": limit}
        if cursor:
            params["after"] = cursor
        body = get_json("/v1/batches", params, functools.partial(
            decode_list_page, keep_raw=settings.store_raw) if typed else orjson.loads)
        if isinstance(body, dict):
            if not isinstance(body.get("data", []), list | None):
                raise GatewayBadResponse(
                    f"page {rep.pages + 1} of {provider} is not a batch list",
                    payload=orjson.dumps(body)[:100_000])
            page = Page(rep.pages + 1, body.get("data") or [], body.get("has_more") is True,
                        body.get("next_cursor") or body.get("last_id"))
        elif isinstance(body, ListPage):
            page = Page(rep.pages + 1, body.data or [], body.has_more is True,
                        body.next_cursor or body.last_id, typed=True)
        else:
            raise GatewayBadResponse(
                f"page {rep.pages + 1} of {provider} is not a batch list",
                payload=orjson.dumps(body)[:100_000])
        objects, has_more, nxt = page.objects, page.has_more, page.cursor
        page.cursor = nxt if has_more else None
        rep.pages += 1
        rep.objects += len(objects)
        ids = set(page.ids())
        dup = len(ids & prev_ids)
        if dup:
            rep.duplicate_ids += dup
        prev_ids = {i for i in ids if isinstance(i, str)}
        yield page
        if not has_more:
            rep.complete = True
            return
        empty_run = empty_run + 1 if not objects else 0
        if empty_run >= MAX_EMPTY_PAGES:
            rep.warnings.append(f"{empty_run} empty pages in a row with has_more; stopped")
            return
        if not nxt:
            rep.warnings.append(f"page {rep.pages} says has_more but gives no cursor; stopped")
            return
        if nxt in seen_cursors or nxt == cursor:
            rep.warnings.append(
                f"cursor repeated at page {rep.pages} (the gateway ignores `after`?); "
                "stopped to avoid an endless loop")
            return
        seen_cursors.add(nxt)
        cursor = nxt
