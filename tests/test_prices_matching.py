"""Cost on every line the shipped price table can price, with the model names real gateways
send, over HTTP: which model a line is priced as is genai-prices' own decision, and its list
cost is genai-prices' own ``calc_price`` to 1e-9 USD; batch cost is its batch variant, else
0.5 x list; tiered prices by the tier the line's tokens fall in."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from genai_prices import Usage, calc_price

from batchlake.pipeline import sync
from tests.cli_runner import invoke
from tests.conftest import rows, settings_for
from tests.results_fixtures import NOW, body, chat, plan

GENAI = {"gemini": "google", "vertex": "google", "bedrock": "aws"}


def anthropic_line(cid: str, model: str, inp: int, read: int, out: int) -> dict[str, Any]:
    return {"custom_id": cid, "result": {"type": "succeeded", "message": {
        "model": model, "usage": {"input_tokens": inp, "output_tokens": out,
                                  "cache_read_input_tokens": read,
                                  "cache_creation_input_tokens": 0}}}}


def bedrock_claude(cid: str, model: str, inp: int, out: int) -> dict[str, Any]:
    return {"custom_id": cid, "response": {"status_code": 200, "body": {
        "type": "message", "model": model, "usage": {"input_tokens": inp,
                                                     "output_tokens": out}}}}


def bedrock_nova(cid: str, inp: int, out: int) -> dict[str, Any]:
    return {"custom_id": cid, "response": {"status_code": 200, "body": {
        "output": {"message": {"content": [{"text": "ok"}]}},
        "usage": {"inputTokens": inp, "outputTokens": out}}}}


def bedrock_llama(cid: str, inp: int, out: int) -> dict[str, Any]:
    return {"custom_id": cid, "response": {"status_code": 200, "body": {
        "generation": "ok", "prompt_token_count": inp, "generation_token_count": out}}}


def gemini_line(cid: str, inp: int, out: int) -> dict[str, Any]:
    return {"custom_id": cid, "response": {"status_code": 200, "body": {
        "text": "ok", "usage": {"prompt_tokens": inp, "completion_tokens": out,
                                "total_tokens": inp + out}}}}


# (provider, batch's model, lines): each line's model is the body's, else the batch's
CASES: list[tuple[str, str, list[dict[str, Any]]]] = [
    ("openai", "gpt-4o-mini", [
        chat("dated", "gpt-4o-mini-2024-07-18", 1200, 200, 300),
        chat("ft", "ft:gpt-4o-mini-2024-07-18:acme::9x7Yz1Qa", 800, 0, 100)]),
    ("azure", "gpt-4o", [
        chat("az-4o", "gpt-4o-2024-08-06", 1000, 0, 250),
        chat("az-mini", "gpt-4o-mini-2024-07-18", 3000, 1000, 40),
        chat("az-41", "gpt-4.1-2025-04-14", 500, 0, 50)]),
    ("anthropic", "claude-sonnet-4", [
        anthropic_line("an-sonnet", "claude-sonnet-4-20250514", 900, 100, 400),
        anthropic_line("an-haiku", "claude-3-5-haiku-20241022", 700, 0, 90)]),
    ("bedrock", "us.anthropic.claude-3-haiku-20240307-v1:0", [
        bedrock_claude("br-bare", "claude-3-haiku-20240307", 600, 80),
        bedrock_claude("br-id", "anthropic.claude-3-haiku-20240307-v1:0", 600, 80),
        bedrock_claude("br-us", "us.anthropic.claude-3-5-sonnet-20241022-v2:0", 400, 60),
        bedrock_claude("br-eu", "eu.anthropic.claude-3-7-sonnet-20250219-v1:0", 400, 60),
        bedrock_claude("br-global", "global.anthropic.claude-sonnet-4-20250514-v1:0", 400, 60)]),
    ("bedrock", "meta.llama3-70b-instruct-v1:0", [bedrock_llama("br-llama", 300, 30)]),
    ("bedrock", "amazon.nova-pro-v1:0", [bedrock_nova("br-nova", 300, 30)]),
    ("gemini", "models/gemini-2.5-flash", [gemini_line("gm-flash", 2000, 100)]),
    ("gemini", "publishers/google/models/gemini-2.5-pro", [
        gemini_line("gm-pro-small", 150_000, 1000),
        gemini_line("gm-pro-tier", 250_000, 1000)]),  # past the 200k tier
]


def genai_ref(provider: str, model: str) -> str:
    return model.rsplit("models/", 1)[-1] if provider in ("gemini", "vertex") else model


def expected(provider: str, model: str, inp: int, cached: int, out: int) -> tuple[float, float]:
    """(list cost, batch cost) as genai-prices computes them."""
    usage = Usage(input_tokens=inp, cache_read_tokens=cached, output_tokens=out)
    ref, pid = genai_ref(provider, model), GENAI.get(provider, provider)
    listed = calc_price(usage, ref, provider_id=pid)
    batch = calc_price(usage, ref, provider_id=pid, price_context={"processing": "batch"})
    has_variant = batch.total_price != listed.total_price
    b = batch.total_price if has_variant else listed.total_price * Decimal("0.5")
    return float(listed.total_price), float(b)


@pytest.fixture
def priced(make_gateway: Any, db_path: str) -> dict[str, dict[str, Any]]:
    gw = make_gateway(0, providers=("openai", "azure", "anthropic", "bedrock", "gemini"),
                      now=NOW)
    for n, (provider, model, lines) in enumerate(CASES):
        bid = f"b{n}"
        gw.add_plan(plan(provider, bid, total=len(lines), model=model))
        gw.results_bodies[(provider, bid)] = body(bid, lines)
    sync(settings_for(gw, db_path))
    cols = ("custom_id", "provider", "model", "input_tokens", "cached_input_tokens",
            "output_tokens", "cost_usd", "list_cost_usd", "price_model", "price_source",
            "price_basis", "unpriced_reason")
    got = rows(db_path, f"SELECT {', '.join(cols)} FROM batch_results")
    return {r[0]: dict(zip(cols, r, strict=True)) for r in got}


def test_every_name_real_gateways_send_is_priced_as_genai_prices_prices_it(
        priced: dict[str, dict[str, Any]]) -> None:
    assert len(priced) == sum(len(lines) for _, _, lines in CASES)
    for cid, r in priced.items():
        assert r["unpriced_reason"] is None, (cid, r["unpriced_reason"])
        listed, batch = expected(r["provider"], r["model"], r["input_tokens"],
                                 r["cached_input_tokens"], r["output_tokens"])
        assert r["list_cost_usd"] == pytest.approx(listed, abs=1e-9), cid
        assert r["cost_usd"] == pytest.approx(batch, abs=1e-9), cid
        assert r["price_source"].startswith("genai-prices "), cid
    assert priced["az-4o"]["price_model"] == "gpt-4o"
    assert priced["br-bare"]["price_model"] == "regional.anthropic.claude-3-haiku-20240307-v1:0"
    assert priced["ft"]["price_model"] == "ft:gpt-4o-mini"
    assert priced["az-4o"]["price_basis"] == "half-standard"  # no Azure batch variant
    assert priced["dated"]["price_basis"] == "batch"          # OpenAI's batch variant


def test_a_tiered_price_charges_the_tier_the_line_falls_in(
        priced: dict[str, dict[str, Any]]) -> None:
    small, big = priced["gm-pro-small"], priced["gm-pro-tier"]
    # Gemini 2.5 Pro: 1.25 / 10 USD per 1M below 200k prompt tokens, 2.5 / 15 above
    assert small["list_cost_usd"] == pytest.approx((150_000 * 1.25 + 1000 * 10) / 1e6)
    assert big["list_cost_usd"] == pytest.approx((250_000 * 2.5 + 1000 * 15) / 1e6)
    assert big["cost_usd"] == pytest.approx((250_000 * 1.25 + 1000 * 7.5) / 1e6)


def test_the_resolution_is_stored_and_reprice_recomputes_it_in_sql(
        priced: dict[str, dict[str, Any]], db_path: str) -> None:
    stored = dict(rows(db_path, "SELECT model, price_model FROM prices WHERE rank = 1 AND "
                                "provider = 'azure'"))
    assert stored["gpt-4o-2024-08-06"] == "gpt-4o"
    assert rows(db_path, "SELECT count(*) FROM price_tiers WHERE model = "
                         "'publishers/google/models/gemini-2.5-pro'")[0][0] >= 4
    before = dict(rows(db_path, "SELECT custom_id, cost_usd FROM batch_results"))
    res = invoke("reprice", "--db", db_path)
    assert res.returncode == 0, res.stderr
    after = dict(rows(db_path, "SELECT custom_id, cost_usd FROM batch_results"))
    assert after == pytest.approx(before)


def test_a_prices_file_row_still_wins_with_its_own_rules(make_gateway: Any, db_path: str,
                                                        tmp_path: Any) -> None:
    gw = make_gateway(0, providers=("azure",), now=NOW)
    gw.add_plan(plan("azure", "b_file", total=1, model="gpt-4o"))
    gw.results_bodies[("azure", "b_file")] = body("b_file", [
        chat("filed", "gpt-4o-2024-08-06", 1000, 0, 1000)])
    prices = tmp_path / "p.csv"
    prices.write_text("provider,model,input,output,cache_read,cache_write,batch_input,"
                      "batch_output\nazure,gpt-4o,1,2,,,0.25,0.5\n")
    sync(settings_for(gw, db_path, prices=str(prices)))
    (cost, listed, model, source), = rows(
        db_path, "SELECT cost_usd, list_cost_usd, price_model, price_source FROM batch_results")
    assert (model, source) == ("gpt-4o", "file p.csv")  # its prefix rule, its rates
    assert listed == pytest.approx(3000 / 1e6) and cost == pytest.approx(750 / 1e6)
