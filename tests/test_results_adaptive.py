"""Results from a slow gateway that rate-limits, over real HTTP: the window of bodies in
flight grows while answers come back clean and settles under a gateway's cap, a 429's
Retry-After holds back every new request, every batch settles once through 429 storms,
5xx and broken bodies, a provider's results start while a slower one still lists, and a
Bedrock model look-up inside a full window gets in. The window's rules on a fake clock are
tests/test_limiter.py's."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import orjson
import pytest

import batchlake.results_reader as results_reader
import batchlake.results_stage as results_stage
from batchlake.pipeline import read_stored_results, sync
from batchlake.simulator import Fault
from tests.conftest import rows, settings_for
from tests.results_fixtures import NOW, finished, results_requests
from tests.slow_gateway import Admissions, add_history

RESULTS_CHUNK = 1 << 18  # body bytes the client reads at a time (gateway/client.py)


def states(db: str) -> dict[str, str]:
    return dict(rows(db, "SELECT batch_id, state FROM batch_results_state"))


def lines_once(db: str, batches: int, lines: int) -> bool:
    """Every batch's lines stored exactly once."""
    return rows(db, "SELECT count(*), count(DISTINCT (provider, batch_id, line)), "
                    "count(DISTINCT batch_id) FROM batch_results") == [
        (batches * lines, batches * lines, batches)]


def test_the_window_grows_while_answers_come_back_fast_and_clean(
        make_gateway: Any, db_path: str) -> None:
    gw = make_gateway(0, providers=("openai",), now=NOW, latency={"results": 0.05})
    add_history(gw, "openai", 80)
    sync(settings_for(gw, db_path, results=False))
    rep = read_stored_results(settings_for(gw, db_path, concurrency=1, max_inflight=16))
    assert rep.results[0].results_batches == 80 and lines_once(db_path, 80, 3)
    # from one request at a time to many, and never past the setting's maximum
    assert 8 <= gw.pacing.peak_inflight["results"] <= 16
    assert results_requests(gw) == 80


def test_under_a_gateways_cap_the_window_settles_below_it_with_few_429s(
        make_gateway: Any, db_path: str) -> None:
    gw = make_gateway(0, providers=("openai",), now=NOW, latency={"results": 0.05},
                      max_inflight={"results": 4}, retry_after_s=0)
    add_history(gw, "openai", 120)
    sync(settings_for(gw, db_path, results=False))
    rep = read_stored_results(settings_for(gw, db_path, concurrency=1, max_inflight=32))
    r = rep.results[0]
    assert r.results_batches == 120 and r.results_failed == 0 and lines_once(db_path, 120, 3)
    throttled = gw.pacing.throttled["results"]
    assert gw.pacing.peak_inflight["results"] == 4  # it grew to the cap…
    assert 1 <= throttled <= 0.25 * results_requests(gw)  # …and backed off once refused
    assert results_requests(gw) == 120 + throttled  # each refusal asked again, once


def test_a_429s_retry_after_holds_back_every_new_request(make_gateway: Any,
                                                        db_path: str) -> None:
    gw = make_gateway(0, providers=("openai",), now=NOW, latency={"results": 0.05},
                      max_inflight={"results": 2}, retry_after_s=1)
    add_history(gw, "openai", 20)
    sync(settings_for(gw, db_path, results=False))
    seen = Admissions(gw)
    rep = read_stored_results(settings_for(gw, db_path, concurrency=4, max_inflight=4,
                                           backoff_max_s=5))
    assert rep.results[0].results_batches == 20 and lines_once(db_path, 20, 3)
    refusals = seen.refusals("results")
    assert refusals
    for t in refusals:
        # in the second after a 429, only requests sent before it came back reach the
        # gateway (the window holds at most 4): neither the refused one nor new ones
        assert seen.arrivals("results", t, t + 0.9) <= 3


def test_every_batch_settles_once_through_429_storms_5xx_and_broken_bodies(
        make_gateway: Any, db_path: str) -> None:
    gw = make_gateway(0, providers=("openai",), now=NOW, latency={"results": 0.02})
    add_history(gw, "openai", 60)
    sync(settings_for(gw, db_path, results=False))
    gw.faults = [Fault("truncated", endpoint="results", times=3),
                 Fault("status", endpoint="results", status=429, retry_after="0", times=40),
                 Fault("status", endpoint="results", status=503, times=6)]
    read_stored_results(settings_for(gw, db_path, concurrency=8, max_inflight=64))
    got = states(db_path)
    assert len(got) == 60 and set(got.values()) <= {"loaded", "retry"}
    assert list(got.values()).count("retry") >= 3  # the broken bodies wait for a later run
    con = duckdb.connect(db_path)
    con.execute("UPDATE batch_results_state SET next_attempt_at = ? WHERE state = 'retry'",
                [datetime.now(UTC) - timedelta(seconds=1)])
    con.close()
    gw.faults = []
    read_stored_results(settings_for(gw, db_path))
    assert set(states(db_path).values()) == {"loaded"} and lines_once(db_path, 60, 3)


def test_a_providers_results_start_while_a_slower_provider_still_lists(
        make_gateway: Any, db_path: str) -> None:
    gw = make_gateway(0, providers=("openai", "gemini"), now=NOW, latency={"list": 0.1})
    add_history(gw, "openai", 3)
    add_history(gw, "gemini", 300, lines=1, prefix="g")
    seen = Admissions(gw)
    rep = sync(settings_for(gw, db_path, page_limit=10, results_budget_s=0))
    assert all(r.status == "ok" for r in rep.results)
    # the first results request came while gemini had 30 pages of 100 ms to list
    assert seen.at_first_results is not None
    assert seen.at_first_results.get(("list", "gemini"), 0) < 30
    assert set(states(db_path).values()) == {"loaded"} and len(states(db_path)) == 303


def test_a_provider_that_ends_after_the_budget_is_spent_has_its_backlog_counted(
        make_gateway: Any, db_path: str) -> None:
    gw = make_gateway(0, providers=("openai", "gemini"), now=NOW, latency={"list": 0.1})
    add_history(gw, "openai", 3)
    add_history(gw, "gemini", 200, lines=1, prefix="g")
    rep = sync(settings_for(gw, db_path, page_limit=10, results_budget_s=1e-9))
    by = {r.provider: r for r in rep.results}
    # the budget counted from openai's join: spent before gemini's 20 pages were listed
    assert by["openai"].results_batches >= 1
    assert by["gemini"].results_batches == 0 and by["gemini"].results_backlog == 200
    assert any("results budget" in w for w in by["gemini"].warnings)
    assert rows(db_path, "SELECT results_backlog FROM sync_runs WHERE provider = 'gemini'"
                ) == [(200,)]


def test_a_bedrock_model_look_up_inside_a_full_window_gets_in(make_gateway: Any,
                                                             db_path: str) -> None:
    gw = make_gateway(0, providers=("bedrock",), now=NOW, latency={"retrieve": 0.02})
    gw.add_plan(finished("bedrock", "job-llama", 2, model="meta.llama3-70b-instruct-v1:0"))
    llama = {"custom_id": "l1", "response": {"status_code": 200, "body": {
        "generation": "ok", "prompt_token_count": 300, "generation_token_count": 30}}}
    gw.results_bodies[("bedrock", "job-llama")] = orjson.dumps(
        {"batch_id": "job-llama", "results": [llama]})
    sync(settings_for(gw, db_path, results=False))
    done = threading.Event()
    # one request at a time: the look-up, asked while the body holds the only slot
    worker = threading.Thread(target=lambda: (read_stored_results(
        settings_for(gw, db_path, concurrency=1, max_inflight=1)), done.set()), daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert done.is_set(), "the look-up waited for the window its own body held"
    assert rows(db_path, "SELECT model FROM batch_results") == [
        ("meta.llama3-70b-instruct-v1:0",)]
    assert gw.requests[("retrieve", "bedrock")] == 1


def test_what_readers_hold_unstaged_stays_within_its_budget_whatever_the_window(
        make_gateway: Any, db_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    gw = make_gateway(0, providers=("openai",), now=NOW, latency={"results": 0.05})
    sizes = [5000 + i for i in range(6)]  # bodies of ~4 MB, read 8 at a time
    for n in sizes:
        gw.add_big_batch(n)
    sync(settings_for(gw, db_path, results=False))
    made: list[results_stage.HeldBytes] = []

    class Counted(results_stage.HeldBytes):
        def __init__(self) -> None:
            super().__init__(budget=256 << 10)
            made.append(self)

    monkeypatch.setattr(results_stage, "HeldBytes", Counted)
    monkeypatch.setattr(results_reader, "MIN_PART_BYTES", 16 << 10)
    read_stored_results(settings_for(gw, db_path, concurrency=8, max_inflight=8))
    assert dict(rows(db_path, "SELECT batch_id, count(*) FROM batch_results GROUP BY ALL")) == {
        f"batch_big{n}": n for n in sizes}
    (held,) = made
    bodies = sum(len(gw.results("openai", f"batch_big{n}") or b"") for n in sizes)
    assert held.held == 0  # every byte given back
    # the budget, plus what each reader reads before it sees the budget is spent
    assert held.peak <= (256 << 10) + 8 * ((16 << 10) + RESULTS_CHUNK) < bodies / 2
