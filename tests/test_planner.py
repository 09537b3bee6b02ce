"""Request economy over real HTTP: a re-sync never asks more than a full sync, long-open
batches are polled less and less often, and nothing is missed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from batchlake.pipeline import sync
from batchlake.planner import OpenBatch, is_due, poll_every
from batchlake.simulator import DROP, Plan, SimGateway
from tests.conftest import rows, settings_for
from tests.expect import assert_matches_truth, assert_matches_truth_open_batches

T0 = 1_790_000_000
INTERVAL = 600  # the schedule: every 10 minutes


def plan(bid: str, created: int, *, run_s: int = 60, outcome: str = "completed",
         total: int = 10) -> Plan:
    return Plan(provider="openai", id=bid, created_at=created, validate_s=60, run_s=run_s,
                finalize_s=60, outcome=outcome, total=total, fail_ratio=0.0,
                model="gpt-4o-mini", endpoint="/v1/chat/completions", metadata={},
                cache=None, n_errors=0)


def requests(gw: SimGateway) -> dict[str, int]:
    out = {"list": 0, "retrieve": 0}
    for (endpoint, _), n in gw.requests.items():
        if endpoint in out:
            out[endpoint] += n
    return out


def run_at(gw: SimGateway, db: str, minutes: int, **kw: Any) -> Any:
    """One scheduled run ``minutes`` after T0, in the gateway's world and the run's alike."""
    gw.now = T0 + minutes * 60
    settings = settings_for(gw, db, page_limit=20, poll_interval_s=INTERVAL, results=False)
    return sync(settings, clock=datetime.fromtimestamp(gw.now, UTC), **kw)


def test_backoff_tiers() -> None:
    now = datetime.fromtimestamp(T0, UTC)

    def batch(late_h: float, seen_min_ago: float) -> OpenBatch:
        return OpenBatch("b", now - timedelta(days=2), now - timedelta(hours=late_h),
                         now - timedelta(days=1), now - timedelta(minutes=seen_min_ago))

    assert poll_every(batch(-1, 0), now, INTERVAL) == 0  # inside its window: every run
    assert poll_every(batch(0.5, 0), now, INTERVAL) == 2 * INTERVAL
    assert poll_every(batch(3, 0), now, INTERVAL) == 5 * INTERVAL
    assert poll_every(batch(30, 0), now, INTERVAL) == 15 * INTERVAL
    assert not is_due(batch(3, 40), now, INTERVAL) and is_due(batch(3, 50), now, INTERVAL)
    # no deadline: late a day after its last change
    nodl = OpenBatch("b", None, None, now - timedelta(hours=28), now)
    assert poll_every(nodl, now, INTERVAL) == 5 * INTERVAL


def test_open_batches_without_created_at_never_cost_more_than_a_full_sync(
        make_gateway: Any, db_path: str) -> None:
    gw = make_gateway(0, providers=("openai",), now=T0)
    for i in range(400):  # finished history over a month
        gw.add_plan(plan(f"batch_done{i:04d}", T0 - 2 * 86400 - i * 6000))
    for i in range(120):  # open batches that list last and carry no created_at
        p = plan(f"batch_open{i:03d}", T0 - 40 * 86400 + i, run_s=3 * 3600)
        p.overrides["created_at"] = DROP
        gw.add_plan(p)
    for i in range(10):
        gw.add_plan(plan(f"batch_new{i}", T0 - 3600 + i))
    run_at(gw, db_path, 0)
    full = requests(gw)
    assert full["retrieve"] == 0
    for step in range(1, 6):
        gw.requests.clear()
        rep = run_at(gw, db_path, step * 30)  # the open ones finish as the clock moves on
        got = requests(gw)
        assert got["list"] + got["retrieve"] <= full["list"] + full["retrieve"], (step, got)
        assert rep.results[0].plan.startswith(("full", "list-to-oldest", "window"))
    assert_matches_truth(gw, db_path)
    assert rows(db_path, "SELECT count(*) FROM batches WHERE NOT is_terminal") == [(0,)]
    assert rows(db_path, "SELECT count(plan) FROM sync_runs") == [(6,)]


def test_stuck_batches_are_polled_less_often_and_nothing_is_missed(
        make_gateway: Any, db_path: str) -> None:
    gw = make_gateway(0, providers=("openai",), now=T0)
    # a dense finished history just below the listing window: listing down through it costs
    # more pages than following the open batches by id
    for i in range(1600):
        gw.add_plan(plan(f"batch_hist{i:04d}", T0 - 26 * 3600 - i * 9))
    for i in range(20):
        gw.add_plan(plan(f"batch_new{i}", T0 - 1800 + i))
    stuck = 10 ** 8  # running forever: their counts never move
    late_4h = [plan(f"batch_late4h_{i}", T0 - 28 * 3600 + i, run_s=stuck)
               for i in range(20)]
    late_2d = [plan(f"batch_late2d_{i}", T0 - 3 * 86400 + i, run_s=stuck)
               for i in range(280)]
    for p in [*late_4h, *late_2d]:
        gw.add_plan(p)
    finisher = late_4h[0]
    run_at(gw, db_path, 0)  # the first sync lists everything
    by_id = []
    for k in range(1, 10):  # nine more scheduled runs, ten minutes apart
        if k == 3:
            # one of them finishes between runs 3 and 4
            finisher.run_s = (T0 + 25 * 60) - (finisher.created_at + finisher.validate_s)
            finisher.finalize_s = 1
        gw.requests.clear()
        rep = run_at(gw, db_path, 10 * k)
        by_id.append(requests(gw)["retrieve"])
        r = rep.results[0]
        assert r.refetched == by_id[-1]
        if k == 5:
            # 4 h late: every 5 intervals, so due again 50 minutes after the first sync
            assert rows(db_path, "SELECT status FROM batches WHERE batch_id = ?",
                        [finisher.id]) == [("completed",)]
    # 300 open batches; without backoff each run would follow them all by id
    assert by_id == [0, 0, 0, 0, 20, 0, 0, 0, 0]
    assert sum(by_id) < 9 * 300 / 10
    deferred = rows(db_path, "SELECT deferred FROM sync_runs ORDER BY started_at")
    assert deferred[1][0] == 300 and deferred[5][0] == 280
    assert all("window+by-id" in p or "window" in p for (p,) in rows(
        db_path, "SELECT plan FROM sync_runs ORDER BY started_at")[1:])
    # stuck and the overdue views still show every deferred batch
    assert rows(db_path, "SELECT count(*) FROM v_overdue") == [(299,)]
    # nothing was missed: a full refresh now finds no difference
    gw.requests.clear()
    rep = run_at(gw, db_path, 95, full_refresh=True)
    c = rep.results[0].counts
    assert (c.inserted, c.updated) == (0, 0)
    # (by-id objects carry their own latency, untracked: compare the states)
    assert_matches_truth_open_batches(gw, db_path)
