"""The gateway client over real HTTP, with faults injected by the simulated gateway."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import pytest

from batchlake.common import (
    Auth,
    GatewayAuthError,
    GatewayBadRequest,
    GatewayBadResponse,
    GatewayNotFound,
    GatewayServerError,
    GatewayUnreachable,
    Settings,
)
from batchlake.gateway import GatewayClient, ListingReport, parse_retry_after
from batchlake.simulator import Fault, SimGateway
from tests.conftest import free_port

FAST = {"backoff_base_s": 0.01, "backoff_max_s": 0.5, "timeout_s": 1.0}


def client(gw: SimGateway, **kw: Any) -> GatewayClient:
    return GatewayClient(Settings(base_url=gw.base_url, **{**FAST, **kw}))


def listed_ids(c: GatewayClient, provider: str, report: ListingReport | None = None
               ) -> list[str]:
    return [o["id"] for page in c.list_pages(provider, report=report) for o in page.objects]


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini", "bedrock", "azure"])
def test_listing_returns_every_batch_once(gateway: SimGateway, provider: str) -> None:
    with client(gateway, page_limit=7) as c:
        rep = ListingReport()
        ids = listed_ids(c, provider, rep)
    want = [p.id for p in gateway.visible(provider)]
    assert sorted(ids) == sorted(want) and len(ids) == len(set(ids))
    assert rep.complete and not rep.warnings


@pytest.mark.parametrize("provider", ["gemini", "bedrock"])
def test_ids_with_slashes_and_colons_are_percent_encoded(gateway: SimGateway, provider: str
                                                          ) -> None:
    bid = gateway.visible(provider)[0].id
    assert "/" in bid
    with client(gateway) as c:
        assert c.retrieve_batch(provider, bid)["id"] == bid


def test_bifrost_error_message_becomes_the_exception_message(gateway: SimGateway) -> None:
    with client(gateway) as c, pytest.raises(GatewayBadRequest,
                                             match="provider query parameter is required"):
        c.get_json("/v1/batches", {})
    with client(gateway) as c, pytest.raises(GatewayNotFound, match="batch nope not found"):
        c.retrieve_batch("openai", "nope")


def test_wrong_key_is_an_auth_error_not_retried(make_gateway: Any) -> None:
    gw = make_gateway(20, api_key="sk-bf-right")
    s = Settings(base_url=gw.base_url, auth=Auth(api_key="sk-bf-wrong"), **FAST)
    with GatewayClient(s) as c, pytest.raises(GatewayAuthError, match="Invalid API key") as ei:
        c.get_json("/v1/batches", {"provider": "openai"})
    assert "sk-bf-wrong" not in str(ei.value)
    assert gw.requests[("list", "openai")] == 1


@pytest.mark.parametrize("auth", [
    Auth(api_key="sk-bf-right"),
    Auth(api_key="sk-bf-right", header_name="x-api-key"),
    Auth(basic_user="svc", basic_password="sk-bf-right"),
])
def test_every_auth_style_is_accepted(make_gateway: Any, auth: Auth) -> None:
    gw = make_gateway(20, api_key="sk-bf-right")
    with GatewayClient(Settings(base_url=gw.base_url, auth=auth, **FAST)) as c:
        assert len(listed_ids(c, "openai")) == len(gw.visible("openai"))
    assert "sk-bf-right" not in repr(auth)


def test_unreachable_url_fails_fast_with_one_line() -> None:
    start = time.monotonic()
    with GatewayClient(Settings(base_url="http://127.0.0.1:9", **FAST)) as c, \
            pytest.raises(GatewayUnreachable, match="cannot reach the gateway") as ei:
        c.get_json("/v1/batches", {"provider": "openai"})
    assert time.monotonic() - start < 2
    assert "\n" not in str(ei.value)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(gateway: SimGateway, status: int) -> None:
    gateway.faults = [Fault("status", status=status, times=2)]
    with client(gateway) as c:
        assert c.get_json("/v1/batches", {"provider": "openai"})["data"]
    assert gateway.requests[("list", "openai")] == 3


@pytest.mark.parametrize("retry_after", ["1", "date:1"])
def test_retry_after_is_honoured(gateway: SimGateway, retry_after: str) -> None:
    gateway.faults = [Fault("status", status=429, retry_after=retry_after, times=1)]
    start = time.monotonic()
    with client(gateway, backoff_max_s=5) as c:
        c.get_json("/v1/batches", {"provider": "openai"})
    # an HTTP-date has one-second resolution: it may round down by up to a second
    assert time.monotonic() - start >= (0.9 if retry_after == "1" else 0.0)
    assert gateway.requests[("list", "openai")] == 2


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("7") == 7
    now = time.time()
    assert 9 <= (parse_retry_after(email.utils.formatdate(now + 10, usegmt=True), now) or 0) <= 10
    assert parse_retry_after("soon") is None


def test_retries_are_capped(gateway: SimGateway) -> None:
    gateway.faults = [Fault("status", status=503, times=-1)]
    with client(gateway, max_retries=3) as c, pytest.raises(GatewayServerError, match="503"):
        c.get_json("/v1/batches", {"provider": "openai"})
    assert gateway.requests[("list", "openai")] == 4


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_client_errors_are_never_retried(gateway: SimGateway, status: int) -> None:
    gateway.faults = [Fault("status", status=status, times=-1)]
    with client(gateway) as c, pytest.raises(Exception) as ei:
        c.get_json("/v1/batches", {"provider": "openai"})
    assert str(status) in str(ei.value)
    assert gateway.requests[("list", "openai")] == 1


@pytest.mark.parametrize("kind", ["reset", "truncated", "malformed"])
def test_broken_responses_are_retried(gateway: SimGateway, kind: str) -> None:
    gateway.faults = [Fault(kind, times=1)]
    with client(gateway) as c:
        # a first request opens the connection, so a later reset is a blip, not a wrong URL
        assert c.get_json("/health", {}) == {"status": "ok"}
        assert c.get_json("/v1/batches", {"provider": "openai"})["data"]


def test_persistent_malformed_body_is_a_bad_response(gateway: SimGateway) -> None:
    gateway.faults = [Fault("malformed", times=-1)]
    with client(gateway, max_retries=2) as c, pytest.raises(GatewayBadResponse) as ei:
        c.get_json("/v1/batches", {"provider": "openai"})
    assert b'"data"' in ei.value.payload


def test_read_timeout_is_retried_and_slow_responses_wait(gateway: SimGateway) -> None:
    gateway.faults = [Fault("delay", delay_s=1.5, times=1), Fault("delay", delay_s=0.3, times=1)]
    with client(gateway, timeout_s=1.0) as c:
        c.get_json("/health", {})
        assert c.get_json("/v1/batches", {"provider": "openai"})["data"]  # timeout, retried
        assert c.get_json("/v1/batches", {"provider": "openai"})["data"]  # slow but fine


def test_repeating_cursor_is_detected_and_bounded(gateway: SimGateway) -> None:
    gateway.faults = [Fault("repeat_cursor", provider="bedrock", times=-1)]
    rep = ListingReport()
    with client(gateway, page_limit=5) as c:
        ids = listed_ids(c, "bedrock", rep)
    assert rep.pages <= 3 and ids
    assert any("cursor repeated" in w for w in rep.warnings)
    assert not rep.complete


def test_bedrock_ignores_after_so_naive_paging_would_loop(gateway: SimGateway) -> None:
    with client(gateway, page_limit=5) as c:
        first = c.get_json("/v1/batches", {"provider": "bedrock", "limit": 5})
        again = c.get_json("/v1/batches", {"provider": "bedrock", "limit": 5,
                                           "after": first["data"][-1]["id"]})
    assert [o["id"] for o in first["data"]] == [o["id"] for o in again["data"]]
    assert "last_id" not in first and first.get("next_cursor")


def test_empty_page_with_has_more_is_followed(gateway: SimGateway) -> None:
    gateway.faults = [Fault("empty_page", provider="openai", times=2, skip=1)]
    rep = ListingReport()
    with client(gateway, page_limit=10) as c:
        ids = listed_ids(c, "openai", rep)
    assert sorted(ids) == sorted(p.id for p in gateway.visible("openai"))
    assert rep.complete


def test_endless_empty_pages_are_bounded(gateway: SimGateway) -> None:
    gateway.faults = [Fault("empty_page", provider="openai", times=-1)]
    rep = ListingReport()
    with client(gateway, page_limit=10) as c:
        assert listed_ids(c, "openai", rep) == []
    assert rep.pages <= 21 and any("empty pages" in w for w in rep.warnings)


def test_duplicate_ids_across_pages_are_counted(gateway: SimGateway) -> None:
    gateway.faults = [Fault("dup_ids", provider="openai", times=1, skip=0)]
    rep = ListingReport()
    with client(gateway, page_limit=10) as c:
        listed_ids(c, "openai", rep)
    assert rep.duplicate_ids == 3


def test_an_environment_proxy_is_honoured_and_no_proxy_bypasses_it(
        gateway: SimGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    # JSON reads skip httpx.Client's per-request work, but never where a proxy applies:
    # here the proxy is a closed port, so a request that honours it cannot get through.
    dead = free_port()
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{dead}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with client(gateway, max_retries=0) as c, pytest.raises(GatewayUnreachable):
        c.get_json("/v1/batches", {"provider": "openai"})
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with client(gateway) as c:
        assert len(listed_ids(c, "openai")) == len(gateway.visible("openai"))
