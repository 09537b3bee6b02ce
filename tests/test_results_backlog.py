"""Results at history scale, over real HTTP: the batch tables first, results newest finished
first within a budget, the backlog shown and drained, a missing results route detected after
a few requests (and asked again at a later run), batches past their provider's retention
settled without a request, and every finished batch settled exactly once over the runs."""

from __future__ import annotations

import time
from typing import Any

import pytest

import batchlake.results_reader as results_reader
import batchlake.results_stage as results_stage
from batchlake.pipeline import read_stored_results, sync
from batchlake.results_route import RouteWatch
from tests.cli_runner import invoke
from tests.conftest import rows, settings_for
from tests.results_fixtures import NOW, body, finished, history, results_requests


def states(db: str) -> dict[str, str]:
    return dict(rows(db, "SELECT batch_id, state FROM batch_results_state"))


def test_a_missing_results_route_costs_a_few_requests_a_run_and_settles_nothing(
        make_gateway: Any, db_path: str) -> None:
    gw = history(make_gateway, 40, results_route="missing")
    settings = settings_for(gw, db_path)
    rep = sync(settings)
    r = rep.results[0]
    assert r.status == "ok"
    assert rows(db_path, "SELECT count(*) FROM batches")[0][0] == 40  # the batches landed
    assert results_requests(gw) == RouteWatch.ROUTE_MISSING_AFTER
    assert states(db_path) == {}  # nothing settled: asked again at a later run
    assert r.results_backlog == 40
    (warning,) = [w for w in r.warnings if "no results route" in w]
    assert "\n" not in warning and "asked again at the next run" in warning
    assert rows(db_path, "SELECT results_backlog FROM sync_runs")[0][0] == 40
    # the next run asks again, a few requests; once the gateway has the route, all load
    sync(settings)
    assert results_requests(gw) == 2 * RouteWatch.ROUTE_MISSING_AFTER
    gw.results_route = "ok"
    rep = sync(settings_for(gw, db_path, results_budget_s=0))
    assert rep.results[0].results_batches == 40 and rep.results[0].results_backlog == 0
    assert set(states(db_path).values()) == {"loaded"}


@pytest.mark.parametrize("route", ["bifrost-404", "list-only"])
def test_one_bifrost_404_for_every_batch_the_gateway_knows_is_the_route_not_the_batches(
        make_gateway: Any, db_path: str, route: str) -> None:
    gw = history(make_gateway, 20, results_route=route)
    settings = settings_for(gw, db_path)
    rep = sync(settings)
    r = rep.results[0]
    assert results_requests(gw) == RouteWatch.SAME_404_AFTER
    assert states(db_path) == {} and r.results_backlog == 20
    assert any("404 for openai's results whatever the batch" in w for w in r.warnings)
    # a later run, whose listing no longer shows them: still the route, still nothing settled
    rep = sync(settings)
    assert results_requests(gw) == 2 * RouteWatch.SAME_404_AFTER
    assert states(db_path) == {} and rep.results[0].results_backlog == 20


def test_batches_that_are_gone_are_settled_unavailable_each_once(
        make_gateway: Any, db_path: str) -> None:
    gw = history(make_gateway, 8)
    settings = settings_for(gw, db_path, results=False)
    sync(settings)
    # the gateway forgets them (Bifrost answers 404 for results and for the batch itself)
    gw.by_provider["openai"] = []
    gw.reindex("openai")
    gw.results_bodies.clear()
    read_stored_results(settings_for(gw, db_path))
    assert states(db_path) == {f"b{i:03d}": "unavailable" for i in range(8)}
    asked = results_requests(gw)
    assert asked == 8
    read_stored_results(settings_for(gw, db_path))
    assert results_requests(gw) == asked  # settled: never asked again


def test_results_are_read_newest_finished_first_within_the_budget(
        make_gateway: Any, db_path: str) -> None:
    gw = history(make_gateway, 30)
    rep = sync(settings_for(gw, db_path, results_limit=4))
    assert sorted(b for b, s in states(db_path).items() if s == "loaded") == [
        "b000", "b001", "b002", "b003"]
    assert rep.results[0].results_backlog == 0  # a count limit is no budget: not counted
    # a budget spent at once still settles one batch (the newest left), the rest waits
    rep = sync(settings_for(gw, db_path, results_budget_s=1e-9))
    r = rep.results[0]
    loaded = sorted(b for b, s in states(db_path).items() if s == "loaded")
    assert loaded[:5] == ["b000", "b001", "b002", "b003", "b004"]
    assert r.results_batches >= 1 and r.results_backlog == 30 - len(loaded) > 0
    assert any("results budget of 1e-09 s spent" in w for w in r.warnings)


def test_results_status_shows_the_backlog_and_results_drains_it(
        make_gateway: Any, db_path: str) -> None:
    gw = history(make_gateway, 25)
    gw.results_bodies[("openai", "b003")] = b'{"batch_id":"b003","results":[{"oops"}]}'
    sync(settings_for(gw, db_path, results_budget_s=1e-9))
    res = invoke("results", "--status", "--db", db_path, "--format", "csv")
    assert res.returncode == 0, res.stderr
    header, first = res.stdout.splitlines()[:2]
    row = dict(zip(header.split(","), first.split(","), strict=True))
    assert row["provider"] == "openai" and int(row["finished"]) == 25
    assert int(row["backlog"]) >= 20
    from batchlake.warehouse import reading, results_backlog_by_provider

    with reading(db_path) as con:
        (before,) = results_backlog_by_provider(con).to_dicts()
    assert before["finished"] == 25 and before["backlog"] >= 20
    seen: list[tuple[int, int]] = []
    rep = read_stored_results(settings_for(gw, db_path), on_progress=lambda d, t: seen.append(
        (d, t)))
    assert rep.results[0].results_backlog == 0
    assert seen and seen[-1][0] == seen[-1][1] == before["backlog"]
    assert [d for d, _ in seen] == list(range(1, len(seen) + 1))
    with reading(db_path) as con:
        (after,) = results_backlog_by_provider(con).to_dicts()
    assert after["backlog"] == 0 and after["loaded"] + after["retry_waiting"] + \
        after["retry_due"] == 25
    res = invoke("results", "--status", "--db", db_path)
    assert res.returncode == 0 and "b003" in res.stdout and "unreadable" in res.stdout


def test_batches_past_anthropics_retention_are_settled_without_a_request(
        make_gateway: Any, db_path: str) -> None:
    gw = make_gateway(0, providers=("anthropic",), now=NOW)
    for bid, age in (("msg_recent", 3), ("msg_old", 40)):
        gw.add_plan(finished("anthropic", bid, age, model="claude-sonnet-4"))
        gw.results_bodies[("anthropic", bid)] = body(bid, [{"custom_id": "x", "result": {
            "type": "succeeded", "message": {"model": "claude-sonnet-4-20250514", "usage": {
                "input_tokens": 5, "output_tokens": 5}}}}])
    rep = sync(settings_for(gw, db_path))
    assert results_requests(gw) == 1
    got = dict(rows(db_path, "SELECT batch_id, state || ': ' || coalesce(last_error, '') "
                             "FROM batch_results_state"))
    assert got["msg_recent"].startswith("loaded")
    assert got["msg_old"].startswith("unavailable: anthropic keeps batch results for 29 days")
    assert any("29-day results retention" in w for w in rep.results[0].warnings)
    read_stored_results(settings_for(gw, db_path), refetch=True)  # --refetch asks anyway
    assert results_requests(gw) == 3
    assert states(db_path) == {"msg_recent": "loaded", "msg_old": "loaded"}


def test_a_crash_mid_backlog_converges_to_each_batch_once(
        make_gateway: Any, db_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    gw = history(make_gateway, 30)
    settings = settings_for(gw, db_path, results=False)
    sync(settings)
    real = results_reader.flatten_results
    calls = {"n": 0}

    def crash_on_the_seventh(*a: Any, **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 7:
            raise RuntimeError("killed mid-backlog")
        return real(*a, **kw)

    monkeypatch.setattr(results_reader, "flatten_results", crash_on_the_seventh)
    monkeypatch.setattr(results_stage, "GROUP_BATCHES", 4)  # commits every 4 batches
    # one body at a time: the six batches before the crash are read whole when it comes (with
    # readers in parallel, the crash may surface before any of them is, and nothing commits)
    rep = read_stored_results(settings_for(gw, db_path, concurrency=1, max_inflight=1))
    assert rep.results[0].status == "failed" and "killed mid-backlog" in rep.results[0].error
    committed = rows(db_path, "SELECT count(*) FROM batch_results_state")[0][0]
    assert 0 < committed < 30
    monkeypatch.setattr(results_reader, "flatten_results", real)
    read_stored_results(settings_for(gw, db_path))
    assert set(states(db_path).values()) == {"loaded"} and len(states(db_path)) == 30
    assert rows(db_path, "SELECT count(*), count(DISTINCT (batch_id, line)) FROM "
                         "batch_results") == [(90, 90)]


def test_results_shows_a_progress_bar_on_a_terminal(make_gateway: Any, db_path: str) -> None:
    import os
    import pty
    import select
    import subprocess
    import sys

    from tests.conftest import ROOT

    gw = history(make_gateway, 12)
    sync(settings_for(gw, db_path, results=False))
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchlake", "results", "--db", db_path, "--base-url",
         gw.base_url, "--providers", "openai"], stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=follower, cwd=ROOT,
        env={**os.environ, "COLUMNS": "120", "TERM": "xterm"})
    os.close(follower)
    shown = b""
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:  # read as it writes: a full terminal blocks it
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the other end closed: everything was read
                    break
                if not chunk:
                    break
                shown += chunk
            elif proc.poll() is not None:
                break
        returncode = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)
    assert returncode == 0, shown.decode(errors="replace")
    assert b"12/12 batches" in shown
    assert states(db_path) == {f"b{i:03d}": "loaded" for i in range(12)}


def test_a_drain_loads_under_the_raised_memory_cap_from_first_to_last(
        make_gateway: Any, db_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`batchlake results` (every provider ended before it starts) keeps DuckDB's cap raised
    for the whole stage: the settled batches' index and the pending query need it."""
    from batchlake.warehouse.db import size_bytes

    gw = history(make_gateway, 12)
    sync(settings_for(gw, db_path, results=False))
    real, caps = results_stage.load_results_group, []

    def load_and_note_the_cap(wh: Any, *a: Any, **kw: Any) -> Any:
        caps.append(wh.con.execute("SELECT current_setting('memory_limit')").fetchone()[0])
        return real(wh, *a, **kw)

    monkeypatch.setattr(results_stage, "load_results_group", load_and_note_the_cap)
    monkeypatch.setattr(results_stage, "GROUP_BATCHES", 4)  # three loads
    read_stored_results(settings_for(gw, db_path))
    assert len(caps) >= 3
    floor = size_bytes(results_stage.RESULTS_MEMORY_LIMIT) or 0
    assert all((size_bytes(c) or 0) >= floor * 0.9 for c in caps), caps
