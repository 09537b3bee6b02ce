"""The rules of `batchlake reconcile` that need no gateway: Bifrost's row ids, its rows read
(echo rows apart), the statuses and the reasons for a difference (docs/costs.md), and the
simulated gateway's own pricing of a batch, which the HTTP tests (tests/test_reconcile.py)
compare batchlake against."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from batchlake.simulator import CATALOG, prices_csv
from batchlake.simulator.batch_accounting import account, rates_for
from batchlake.transforms import (
    BatchlakeModel,
    BatchlakeSide,
    Tolerance,
    compare,
    cost_log_id,
    legacy_cost_log_id,
    parse_cost_row,
    pick_cost_row,
)
from tests.results_fixtures import body, chat


def test_the_cost_row_id_is_bifrosts_uuid5() -> None:
    # the values Go's uuid.NewSHA1(namespace, "provider:batch_id") gives (bifrost-logs.md)
    assert cost_log_id("openai", "batch_123") == "b4b8e42d-bed9-5855-9579-6babdb6e10ec"
    assert cost_log_id("anthropic", "msgbatch_01") == "6ecb6165-f63f-54f2-a401-d4385ca8aad4"
    assert legacy_cost_log_id("openai", "b1") == "batch-cost:openai:b1"


def _row(batch_id: str = "b1", *, cost: float | None = 1.0, echo: bool = False,
         log_id: str | None = None, at: str = "2026-12-01T10:00:00.123456789Z",
         breakdowns: dict[str, Any] | None = None, **usage: int) -> dict[str, Any]:
    accounting: dict[str, Any] = {"model_breakdowns": breakdowns or {}}
    if echo:
        accounting.update(echo=True, cost=cost)
    row: dict[str, Any] = {
        "id": log_id or cost_log_id("openai", batch_id), "object": "batch_results",
        "provider": "openai", "model": "gpt-4o-mini", "timestamp": at, "status": "success",
        "token_usage": usage or {"prompt_tokens": 100, "completion_tokens": 10,
                                 "total_tokens": 110},
        "batch_debug": {"batch_id": batch_id, "request_counts": {"total": 3, "completed": 3,
                                                                 "failed": 0},
                        "accounting": accounting}}
    if cost is not None and not echo:
        row["cost"] = cost
    return row


def test_a_row_reads_as_bifrost_writes_it() -> None:
    r = parse_cost_row(_row(cost=None, breakdowns={"gpt-4o-mini": {
        "model": "gpt-4o-mini", "request_count": 3,
        "usage": {"prompt_tokens": 100, "completion_tokens": 10}}}, prompt_tokens=100))
    assert r is not None and r.cost is None and not r.echo
    # Go omits zero counts: with token_usage present, absent means 0
    assert (r.prompt_tokens, r.completion_tokens, r.total_tokens) == (100, 0, 0)
    assert r.logged_at is not None and r.logged_at.microsecond == 123456
    assert r.models[0].requests == 3 and r.models[0].cost is None
    assert parse_cost_row({"object": "chat_completion", "id": "x"}) is None
    assert parse_cost_row("not a row") is None
    # a dev snapshot's row kept its detail in metadata
    old = {"id": "batch-cost:openai:b9", "object": "batch_results", "cost": 0.5,
           "metadata": {"batch_accounting": True, "batch_id": "b9", "provider": "openai"}}
    parsed = parse_cost_row(old)
    assert parsed is not None and parsed.batch_id == "b9" and parsed.cost == 0.5


def test_echo_rows_never_count_and_the_batchs_own_row_wins() -> None:
    echo = _row(echo=True, cost=9.0, log_id="e1", at="2026-12-01T09:00:00Z")
    assert pick_cost_row([echo], "openai", "b1") == (None, 1)
    # builds before #6522 wrote echo rows unflagged: the prefix id wins, else the earliest
    legacy = _row(cost=2.0, log_id=legacy_cost_log_id("openai", "b1"),
                  at="2026-12-01T12:00:00Z")
    later = _row(cost=4.0, log_id="r-later", at="2026-12-01T13:00:00Z")
    first = _row(cost=3.0, log_id="r-first", at="2026-12-01T11:00:00Z")
    row, others = pick_cost_row([echo, later, legacy, first, _row("b2")], "openai", "b1")
    assert row is not None and row.cost == 2.0 and others == 3
    row, others = pick_cost_row([later, first], "openai", "b1")
    assert row is not None and row.cost == 3.0 and others == 1


def _side(cost: float | None, *, unpriced: int = 0, input_tokens: int = 100,
          cached: int = 0, written: int = 0, output: int = 10, requests: int = 3,
          basis: str = "batch") -> BatchlakeSide:
    m = BatchlakeModel("gpt-4o-mini", requests, input_tokens, cached, written, output, cost,
                       unpriced, basis, "genai-prices 0.2.3 (openai)", "gpt-4o-mini")
    return BatchlakeSide("openai", "b1", requests, requests, unpriced, cost, input_tokens,
                         cached, written, output, (m,))


def _gw(cost: float | None, *, prompt: int = 100, completion: int = 10, total: int = 110,
        requests: int = 3, model_cost: float | None = None) -> Any:
    share: dict[str, Any] = {"model": "gpt-4o-mini", "request_count": requests,
                             "usage": {"prompt_tokens": prompt,
                                       "completion_tokens": completion}}
    if model_cost is not None or cost is not None:
        share["cost"] = model_cost if model_cost is not None else cost
    return parse_cost_row(_row(cost=cost, breakdowns={"gpt-4o-mini": share},
                               prompt_tokens=prompt, completion_tokens=completion,
                               total_tokens=total))


@pytest.mark.parametrize(("mine", "theirs", "status"), [
    (1.0, 1.00009, "match"),        # 0.009 %: within 0.01 %
    (1.0, 1.0002, "differs"),       # 0.02 %
    (0.10, 0.10009, "match"),       # $0.00009: within $0.0001 (0.09 %)
    (0.10, 0.10011, "differs"),
    (0.0, 0.0, "match"),
])
def test_the_default_tolerance_is_a_hundredth_of_a_percent_or_a_hundredth_of_a_cent(
        mine: float, theirs: float, status: str) -> None:
    assert compare(_side(mine), _gw(theirs), Tolerance()).status == status


def test_each_status_and_the_difference_is_gateway_minus_batchlake() -> None:
    tol = Tolerance()
    assert compare(_side(1.0), None, tol).status == "gateway_missing"
    unpriced = compare(_side(1.0), _gw(None), tol)
    assert unpriced.status == "gateway_unpriced" and unpriced.difference is None
    assert "NULL" in (unpriced.reason or "")
    mine = compare(_side(0.5, unpriced=1), _gw(1.0), tol)
    assert mine.status == "batchlake_unpriced" and "1 line batchlake has no price" in (
        mine.reason or "")
    d = compare(_side(1.0), _gw(1.5, model_cost=1.5), tol)
    assert d.status == "differs" and d.difference == pytest.approx(0.5)
    # a batch whose lines have no usage costs nothing to either side
    empty = BatchlakeSide("openai", "b1", 2, 0, 0, None, 0, 0, 0, 0, ())
    assert compare(empty, _gw(0.0, prompt=0, completion=0, total=0, requests=0),
                   tol).status == "match"
    # a looser tolerance, as the option sets it
    assert compare(_side(1.0), _gw(1.04), Tolerance(pct=5)).status == "match"


def test_the_reason_names_cache_tokens_counted_differently() -> None:
    # Anthropic: batchlake's input holds 40 cache reads and 20 cache writes; the gateway's
    # prompt leaves them out (and so prices them at nothing)
    side = _side(1.0, input_tokens=100, cached=40, written=20)
    reason = compare(side, _gw(0.7, prompt=40, total=50), Tolerance()).reason or ""
    assert "leave out the 60 cache tokens" in reason and "read 40, written 20" in reason
    # OpenAI: cached tokens are inside prompt_tokens; counted again on top
    reason = compare(_side(1.0, cached=30), _gw(1.2, prompt=130, total=140),
                     Tolerance()).reason or ""
    assert "counts the 30 cached tokens twice" in reason


def test_the_reason_names_thinking_tokens_only_in_the_total() -> None:
    # Gemini: batchlake adds the total's surplus to the output; the gateway bills the
    # completion count only
    side = _side(1.0, output=900)
    reason = compare(side, _gw(0.4, completion=100, total=1000), Tolerance()).reason or ""
    assert "bills 800 fewer output tokens" in reason and "thinking" in reason


def test_the_reason_names_rates_requests_models_and_a_double_bill() -> None:
    tol = Tolerance()
    rates = compare(_side(1.0, basis="half-standard"), _gw(1.25, model_cost=1.25),
                    tol).reason or ""
    assert rates.startswith("rates: gpt-4o-mini") and "half-standard from genai-prices" in rates
    assert "tokens:" not in rates
    twice = compare(_side(1.0), _gw(2.0, model_cost=2.0), tol).reason or ""
    assert twice.startswith("billed 2 times") and "#6522" in twice and "rates" not in twice
    requests = compare(_side(1.0), _gw(1.5, requests=2, model_cost=1.5), tol).reason or ""
    assert "requests: gpt-4o-mini: 2 at the gateway, 3 in batchlake" in requests
    other = parse_cost_row(_row(cost=1.5, breakdowns={"gpt-4.1": {
        "model": "gpt-4.1", "request_count": 3, "usage": {}, "cost": 1.5}}))
    models = compare(_side(1.0), other, tol).reason or ""
    assert "only the gateway has gpt-4.1" in models and "only batchlake has gpt-4o-mini" in models
    unexplained = compare(_side(1.0), _gw(1.5, model_cost=1.0), tol).reason or ""
    assert unexplained.startswith("unexplained")


def test_the_simulated_gateway_prices_as_bifrost_and_as_its_prices_file() -> None:
    # OpenAI cached tokens inside prompt_tokens, priced at the cache rate; batch rates
    lines = [chat("a", "gpt-4o-mini-2024-07-18", 1000, 400, 100),
             chat("b", "gpt-4o-mini-2024-07-18", 10, 0, 5),
             {"custom_id": "c", "response": {"status_code": 400, "body": {}}}]
    acct = account("openai", body("b1", lines), "gpt-4o-mini")
    r = CATALOG["gpt-4o-mini"]
    assert r.batch_input is not None and r.batch_output is not None and r.cache_read
    ratio = r.batch_input / r.input
    want = ((600 + 10) * r.batch_input + 400 * r.cache_read * ratio
            + 105 * r.batch_output) / 1e6
    assert acct.cost == pytest.approx(want, rel=1e-12)
    assert acct.models["gpt-4o-mini-2024-07-18"].requests == 2 and acct.usage.prompt == 1010
    assert rates_for("ft:gpt-4o-mini-2024-07-18:acme::x") is CATALOG["ft:gpt-4o-mini"]
    assert rates_for("gpt-4o") is CATALOG["gpt-4o"] and rates_for("nope") is None
    # a model without a rate leaves the batch's cost NULL
    unknown = account("openai", body("b2", [chat("a", "mystery-1", 10, 0, 5)]), None)
    assert unknown.cost is None and unknown.incomplete
    # Anthropic's cache tokens go into the prompt; an older build leaves them out
    msg = {"custom_id": "m", "result": {"type": "succeeded", "message": {
        "model": "claude-sonnet-4-20250514", "usage": {
            "input_tokens": 50, "output_tokens": 7, "cache_read_input_tokens": 30,
            "cache_creation_input_tokens": 20}}}}
    doc = orjson.dumps({"results": [msg]})
    assert account("anthropic", doc, None).usage.prompt == 100
    assert account("anthropic", doc, None, cache_in_prompt=False).usage.prompt == 50
    header, *rows = prices_csv().splitlines()
    assert header.startswith("provider,model,input") and "acme-private-1" not in prices_csv()
    assert "*,gpt-4o-mini,0.15,0.6,0.075,,0.075,0.3" in rows
