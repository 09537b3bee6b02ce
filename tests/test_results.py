"""Batch results end to end over real HTTP: every finished batch's lines land once, priced by
hand-checkable rules; faults are per batch and retried as they deserve; a crash converges;
re-syncs never ask again; repricing asks nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import batchlake.results_reader as results_reader
import batchlake.results_stage as results_stage
from batchlake.pipeline import sync
from batchlake.simulator import Fault, SimGateway
from tests.cli_runner import invoke
from tests.conftest import rows, settings_for
from tests.results_fixtures import NOW, body, chat, line_counts, plan, results_requests

HEADER = "provider,model,input,output,cache_read,cache_write,batch_input,batch_output\n"


def test_a_sync_loads_every_finished_batchs_lines_once(make_gateway: Any, db_path: str) -> None:
    gw = make_gateway(300, seed=11)
    sync(settings_for(gw, db_path))
    finished = rows(db_path, "SELECT provider, batch_id FROM batches WHERE is_terminal AND "
                             "status_norm IN ('completed', 'expired', 'cancelled')")
    assert finished
    states = dict(((p, b), s) for p, b, s in rows(
        db_path, "SELECT provider, batch_id, state FROM batch_results_state"))
    assert {k: states.get(k) for k in finished} == dict.fromkeys(finished, "loaded")
    # open or failed batches are never asked
    assert results_requests(gw) == len(finished)
    never = rows(db_path, "SELECT count(*) FROM batch_results r JOIN batches b "
                          "USING (provider, batch_id) WHERE NOT b.is_terminal "
                          "OR b.status_norm = 'failed'")
    assert never == [(0,)]
    # every line of every body is a row or a reject, at its own position
    for (p, b), n in line_counts(db_path).items():
        body_lines = len(json.loads(gw.results(p, b) or b"{}")["results"])
        rejected = rows(db_path, "SELECT count(*) FROM rejects WHERE provider = ? AND "
                                 "batch_id = ? AND reason LIKE 'results line%'", [p, b])[0][0]
        assert n + rejected == body_lines
    dup = rows(db_path, "SELECT count(*) FROM (SELECT provider, batch_id, line FROM "
                        "batch_results GROUP BY ALL HAVING count(*) > 1)")
    assert dup == [(0,)]
    # repeated and hostile custom_ids are kept as data, each line its own row
    assert rows(db_path, "SELECT count(*) > count(DISTINCT (provider, batch_id, custom_id)) "
                         "FROM batch_results")[0][0]
    assert rows(db_path, "SELECT count(*) FROM batch_results WHERE custom_id LIKE "
                         "'%DROP TABLE%'")[0][0] > 0
    # a line of the wrong type is a reject with its reason; the rest of its body loads
    assert rows(db_path, "SELECT count(*) FROM rejects WHERE reason LIKE "
                         "'results line 17: response.status_code: expected an integer%'"
                )[0][0] > 0
    # parse_errors the gateway reported are rejects with the reason
    assert rows(db_path, "SELECT count(*) FROM rejects WHERE reason LIKE "
                         "'the gateway could not parse%'")[0][0] > 0
    # bodies are users' data: not stored by default
    assert rows(db_path, "SELECT count(body) FROM batch_results") == [(0,)]
    # the second sync asks nothing again; nor does a full refresh of the batches
    before = results_requests(gw)
    lines = line_counts(db_path)
    sync(settings_for(gw, db_path))
    sync(settings_for(gw, db_path), full_refresh=True)
    assert results_requests(gw) == before
    assert line_counts(db_path) == lines
    # results --refetch reads them again and replaces them: nothing doubles
    res = invoke("results", "--base-url", gw.base_url, "--db", db_path, "--refetch")
    assert res.returncode == 0, res.stderr
    assert results_requests(gw) == before + len(finished)
    assert line_counts(db_path) == lines


def test_a_batch_finishing_later_gets_its_results_then(make_gateway: Any, db_path: str) -> None:
    gw = make_gateway(0, providers=("openai",), now=NOW)
    gw.add_plan(plan("openai", "batch_later"))
    gw.now = NOW - 3 * 86400 + 100  # still running
    sync(settings_for(gw, db_path))
    assert results_requests(gw) == 0 and line_counts(db_path) == {}
    gw.now = NOW
    sync(settings_for(gw, db_path))
    assert line_counts(db_path) == {("openai", "batch_later"): 10}


def test_costs_match_hand_computed_numbers(make_gateway: Any, db_path: str,
                                           tmp_path: Path) -> None:
    gw = make_gateway(0, providers=("openai", "anthropic"), now=NOW)
    gw.add_plan(plan("openai", "b_cost"))
    gw.add_plan(plan("anthropic", "msg_cost", model="claude-x",
                     metadata={"team": "growth"}))
    gw.results_bodies[("openai", "b_cost")] = body("b_cost", [
        chat("a", "gpt-4o-mini-2024-07-18", 1000, 400, 200),   # prefix of gpt-4o-mini
        chat("b", "gpt-4o-2024-08-06", 100, 0, 10),            # gpt-4o: batch rates given
        chat("c", "mystery-1", 100, 0, 10),                    # no price anywhere
        {"custom_id": "d", "response": None,
         "error": {"code": "batch_expired", "message": "expired"}},
    ])
    gw.results_bodies[("anthropic", "msg_cost")] = body("msg_cost", [
        {"custom_id": "e", "result": {"type": "succeeded", "message": {
            "model": "claude-x-20250101", "usage": {
                "input_tokens": 100, "output_tokens": 50, "cache_creation_input_tokens": 20,
                "cache_read_input_tokens": 300}}}},
    ])
    prices = tmp_path / "prices.csv"
    prices.write_text(HEADER
                      + "openai,gpt-4o-mini,0.15,0.6,0.075,,,\n"
                      + "openai,gpt-4o,2.5,10,1.25,,1.25,5\n"
                      + "*,claude-x,3,15,0.3,3.75,,\n", encoding="utf-8")
    report = sync(settings_for(gw, db_path, prices=str(prices), prices_only=True))
    assert not report.failed, report.results
    got = {cid: (cost, lst, basis, reason) for cid, cost, lst, basis, reason in rows(
        db_path, "SELECT custom_id, cost_usd, list_cost_usd, price_basis, unpriced_reason "
                 "FROM batch_results")}
    # a: 600 uncached, 400 cached, 200 out; no batch rates: half of standard everywhere
    list_a = (600 * 0.15 + 400 * 0.075 + 200 * 0.6) / 1e6
    assert got["a"][1] == pytest.approx(list_a, abs=1e-12)
    assert got["a"][0] == pytest.approx(list_a / 2, abs=1e-12)
    assert got["a"][2] == "half-standard"
    # b: the price's batch rates
    assert got["b"][0] == pytest.approx((100 * 1.25 + 10 * 5) / 1e6, abs=1e-12)
    assert got["b"][1] == pytest.approx((100 * 2.5 + 10 * 10) / 1e6, abs=1e-12)
    assert got["b"][2] == "batch"
    # c: no price -> NULL and why; d: no usage -> NULL and why (never 0)
    assert got["c"][:2] == (None, None) and "no price for openai / mystery-1" in got["c"][3]
    assert got["d"][:2] == (None, None) and got["d"][3] == "no usage in the line"
    # e: a '*' row; Anthropic input 100 + 20 written + 300 read
    list_e = (100 * 3 + 300 * 0.3 + 20 * 3.75 + 50 * 15) / 1e6
    assert got["e"][1] == pytest.approx(list_e, abs=1e-12)
    assert got["e"][0] == pytest.approx(list_e / 2, abs=1e-12)
    # the views roll it up; a cost sum ignores unpriced lines and says how many there are
    (cost, lst, saved, unpriced, requests), = rows(
        db_path, "SELECT cost_usd, list_cost_usd, saved_usd, unpriced_requests, requests "
                 "FROM v_batch_costs WHERE batch_id = 'b_cost'")
    assert requests == 4 and unpriced == 1
    assert cost == pytest.approx(got["a"][0] + got["b"][0], abs=1e-12)
    assert saved == pytest.approx(lst - cost, abs=1e-12)
    assert rows(db_path, "SELECT tag, value, round(cost_usd, 12) FROM v_tag_costs "
                         "WHERE provider = 'anthropic'") == [
        ("team", "growth", round(got["e"][0], 12))]
    assert rows(db_path, "SELECT model, requests FROM v_unpriced_models") == [("mystery-1", 1)]
    # the prices in force are stored with their source, so SQL can recompute any cost
    assert rows(db_path, "SELECT count(*), min(source) FROM prices") == [(3, "file prices.csv")]
    # reprice: new prices, not a single request
    asked = sum(gw.requests.values())
    prices.write_text(HEADER + "*,mystery-1,1,2,,,,\n", encoding="utf-8")
    res = invoke("reprice", "--db", db_path, "--prices", str(prices))
    assert res.returncode == 0, res.stderr
    assert sum(gw.requests.values()) == asked
    repriced = dict(rows(db_path, "SELECT custom_id, cost_usd FROM batch_results"))
    assert repriced["c"] == pytest.approx((100 * 1 + 10 * 2) / 2 / 1e6, abs=1e-12)
    # the shipped table is behind the file: gpt-4o-mini now priced from it
    assert repriced["a"] is not None


def test_lookup_prefers_the_file_the_provider_and_the_longest_prefix(
        make_gateway: Any, db_path: str, tmp_path: Path) -> None:
    gw = make_gateway(0, providers=("openai",), now=NOW)
    gw.add_plan(plan("openai", "b_lookup"))
    gw.results_bodies[("openai", "b_lookup")] = body("b_lookup", [
        chat("mini", "gpt-4o-mini-2024-07-18", 1_000_000, 0, 0),
        chat("big", "gpt-4o-2024-08-06", 1_000_000, 0, 0),
        chat("own", "llama-3", 1_000_000, 0, 0),
        chat("dashless", "gpt-4ox", 1_000_000, 0, 0),
    ])
    prices = tmp_path / "p.csv"
    prices.write_text(HEADER + "openai,gpt-4o,10,,,,,\nopenai,gpt-4o-mini,1,,,,,\n"
                      "*,llama-3,7,,,,,\nopenai,llama-3,5,,,,,\n", encoding="utf-8")
    sync(settings_for(gw, db_path, prices=str(prices)))
    got = dict(rows(db_path, "SELECT custom_id, price_model || ' ' || list_cost_usd "
                             "FROM batch_results"))
    assert got["mini"] == "gpt-4o-mini 1.0"   # longest prefix followed by '-'
    assert got["big"] == "gpt-4o 10.0"
    assert got["own"] == "llama-3 5.0"        # the provider's row before '*'
    assert got["dashless"] is None            # 'gpt-4o' + 'x' is not a prefix match
    src = dict(rows(db_path, "SELECT custom_id, price_source FROM batch_results"))
    assert src["mini"] == "file p.csv"


def test_faults_are_per_batch_and_retried_as_they_deserve(make_gateway: Any,
                                                          db_path: str) -> None:
    gw = make_gateway(0, providers=("openai",), now=NOW)
    for bid in ("b_5xx", "b_reset", "b_cut", "b_gone", "b_ok"):
        gw.add_plan(plan("openai", bid, total=30))
    gw.results_bodies[("openai", "b_gone")] = b"not served"
    gw.faults = [Fault("status", provider="openai", endpoint="results", status=503, times=-1)]
    settings = settings_for(gw, db_path, max_retries=0, concurrency=1)
    sync(settings)
    assert rows(db_path, "SELECT DISTINCT state FROM batch_results_state") == [("retry",)]
    assert line_counts(db_path) == {}
    # the next run retries them (next_attempt_at is the failed run's time); now each batch
    # meets a different fault
    gw.faults = [Fault("reset", endpoint="results", times=1),
                 Fault("truncated", endpoint="results", times=1)]
    del gw.results_bodies[("openai", "b_gone")]
    gw.by_provider["openai"] = [p for p in gw.by_provider["openai"] if p.id != "b_gone"]
    gw.reindex("openai")
    sync(settings)
    states = dict(rows(db_path, "SELECT batch_id, state FROM batch_results_state"))
    assert states["b_gone"] == "unavailable"  # 404: not retried
    assert sorted(s for b, s in states.items() if b != "b_gone").count("retry") == 2
    broken = rows(db_path, "SELECT count(*) FROM rejects WHERE reason LIKE "
                           "'results body unreadable%'")[0][0]
    assert broken == 2  # one reject per unreadable body
    loaded = {b for b, s in states.items() if s == "loaded"}
    assert loaded and all(n == 30 for (_, b), n in line_counts(db_path).items())
    # a retry waits for its backoff: the next run right away asks only what is due
    before = results_requests(gw)
    sync(settings)
    assert results_requests(gw) == before  # the retries wait 10 minutes now
    con_rows = rows(db_path, "SELECT attempts, next_attempt_at > last_attempt_at FROM "
                             "batch_results_state WHERE state = 'retry'")
    assert con_rows and all(a == 2 and later for a, later in con_rows)
    # when they are due, they load; the unavailable one is never asked again
    from datetime import UTC, datetime, timedelta

    import duckdb
    con = duckdb.connect(db_path)
    con.execute("UPDATE batch_results_state SET next_attempt_at = ? WHERE state = 'retry'",
                [datetime.now(UTC) - timedelta(seconds=1)])
    con.close()
    sync(settings)
    states = dict(rows(db_path, "SELECT batch_id, state FROM batch_results_state"))
    assert states == {"b_5xx": "loaded", "b_reset": "loaded", "b_cut": "loaded",
                      "b_ok": "loaded", "b_gone": "unavailable"}
    assert set(line_counts(db_path).values()) == {30}
    assert rows(db_path, "SELECT sum(results_failed) > 0, max(result_lines) FROM sync_runs")[0][0]


def test_a_crash_mid_results_then_a_rerun_converges_exactly(make_gateway: Any, tmp_path: Path,
                                                            monkeypatch: Any) -> None:
    gw = make_gateway(150, seed=21, providers=("openai", "anthropic"))
    clean = str(tmp_path / "clean.duckdb")
    sync(settings_for(gw, clean))
    want = rows(clean, "SELECT provider, batch_id, line, custom_id, outcome, input_tokens, "
                       "output_tokens, cost_usd FROM batch_results ORDER BY ALL")
    crashed = str(tmp_path / "crashed.duckdb")
    monkeypatch.setattr(results_stage, "GROUP_BATCHES", 3)
    calls = {"n": 0}
    real = results_reader.flatten_results

    def dying(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 25:
            raise SystemExit("killed mid-results")
        return real(*args, **kwargs)

    monkeypatch.setattr(results_reader, "flatten_results", dying)
    with pytest.raises(SystemExit):
        sync(settings_for(gw, crashed, concurrency=1))
    partial = rows(crashed, "SELECT count(*) FROM batch_results")[0][0]
    assert 0 < partial < len(want)  # some groups committed before the crash
    monkeypatch.setattr(results_reader, "flatten_results", real)
    sync(settings_for(gw, crashed))
    got = rows(crashed, "SELECT provider, batch_id, line, custom_id, outcome, input_tokens, "
                        "output_tokens, cost_usd FROM batch_results ORDER BY ALL")
    assert got == want


def test_bodies_are_stored_only_when_asked(make_gateway: Any, db_path: str) -> None:
    gw = make_gateway(60, seed=4, providers=("openai",))
    res = invoke("sync", "--base-url", gw.base_url, "--db", db_path, "--quiet",
                 "--store-result-bodies")
    assert res.returncode == 0, res.stderr
    assert rows(db_path, "SELECT count(body) > 0 FROM batch_results") == [(True,)]


@pytest.mark.parametrize(("args", "needle"), [
    (["--prices", "/no/such.csv"], "cannot read the prices file"),
    (["--prices-only"], "prices_only needs a prices file"),
    (["--prices", "BAD"], "header must be"),
])
def test_bad_price_options_are_one_line(gateway: SimGateway, db_path: str, tmp_path: Path,
                                        args: list[str], needle: str) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("model,price\nx,1\n", encoding="utf-8")
    args = [str(bad) if a == "BAD" else a for a in args]
    res = invoke("sync", "--base-url", gateway.base_url, "--db", db_path, *args)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert needle in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_a_results_limit_settles_a_backlog_over_runs(make_gateway: Any, db_path: str) -> None:
    gw = make_gateway(0, providers=("openai",), now=NOW)
    for i in range(5):
        gw.add_plan(plan("openai", f"b_backlog_{i}"))
    settings = settings_for(gw, db_path, results_limit=2)
    loaded = []
    for _ in range(3):
        sync(settings)
        loaded.append(len(line_counts(db_path)))
    assert loaded == [2, 4, 5]
    assert results_requests(gw) == 5


def test_a_body_unreadable_the_same_way_twice_waits_a_week_and_says_why(
        make_gateway: Any, db_path: str) -> None:
    from datetime import UTC, datetime, timedelta

    import duckdb

    gw = make_gateway(0, providers=("openai",), now=NOW)
    gw.add_plan(plan("openai", "b_broken", total=5))
    good = [chat(f"c{i}", "gpt-4o-mini", 10, 0, 5) for i in range(5)]
    raw = body("b_broken", good)
    gw.results_bodies[("openai", "b_broken")] = raw.replace(b'"c3"', b'"c3" oops')
    settings = settings_for(gw, db_path, max_retries=0)

    def due_now() -> None:
        con = duckdb.connect(db_path)
        con.execute("UPDATE batch_results_state SET next_attempt_at = ?",
                    [datetime.now(UTC) - timedelta(seconds=1)])
        con.close()

    sync(settings)
    state, same, error = rows(db_path, "SELECT state, same_failures, last_error FROM "
                                       "batch_results_state")[0]
    assert state == "retry" and same == 1 and "unreadable" in error
    due_now()
    sync(settings)
    state, same, wait = rows(db_path, "SELECT state, same_failures, "
                                      "epoch(next_attempt_at - last_attempt_at) FROM "
                                      "batch_results_state")[0]
    assert state == "retry" and same == 2 and wait >= 7 * 86400
    before = results_requests(gw)
    sync(settings)  # not due for a week: no download
    assert results_requests(gw) == before
    # the body is mended: once due, it loads, and the count starts again
    gw.results_bodies[("openai", "b_broken")] = raw
    due_now()
    sync(settings)
    assert rows(db_path, "SELECT state, same_failures FROM batch_results_state") == [
        ("loaded", 0)]
    assert line_counts(db_path) == {("openai", "b_broken"): 5}
