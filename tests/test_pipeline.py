"""The sync end to end: real HTTP to the simulated gateway, real DuckDB files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from batchlake.pipeline import sync
from batchlake.simulator import Plan
from batchlake.transforms import BATCHES
from tests.conftest import rows, settings_for
from tests.expect import assert_matches_truth, assert_matches_truth_open_batches


def test_sync_stores_every_served_object_with_its_values(gateway: Any, db_path: str) -> None:
    rep = sync(settings_for(gateway, db_path))
    assert [r.status for r in rep.results] == ["ok"] * 5
    assert_matches_truth(gateway, db_path)
    total = sum(len(gateway.truth(p)) for p in gateway.providers)
    assert rows(db_path, "SELECT count(*) FROM batches")[0][0] == total
    runs = rows(db_path, "SELECT provider, status, fetched, inserted FROM sync_runs")
    assert {r[0] for r in runs} == set(gateway.providers)
    assert all(r[1] == "ok" and r[2] == r[3] for r in runs)


def test_child_tables_hold_errors_and_metadata(gateway: Any, db_path: str) -> None:
    sync(settings_for(gateway, db_path))
    want_errors = sum(len((o.get("errors") or {}).get("data") or [])
                      for p in gateway.providers for o in gateway.truth(p))
    want_meta = sum(len(o.get("metadata") or {}) for p in gateway.providers
                    for o in gateway.truth(p))
    assert want_errors > 0 and want_meta > 0
    assert rows(db_path, "SELECT count(*) FROM batch_errors")[0][0] == want_errors
    assert rows(db_path, "SELECT count(*) FROM batch_metadata")[0][0] == want_meta
    # errors_count on the wide row agrees with the child table
    assert rows(db_path, """
        SELECT count(*) FROM batches b LEFT JOIN (
            SELECT provider, batch_id, count(*) n FROM batch_errors GROUP BY ALL) e
        USING (provider, batch_id) WHERE b.errors_count <> coalesce(e.n, 0)""")[0][0] == 0


def test_resync_changes_nothing(gateway: Any, db_path: str) -> None:
    s = settings_for(gateway, db_path)
    sync(s)
    before = rows(db_path, "SELECT provider, batch_id, content_hash, last_changed_at "
                           "FROM batches ORDER BY ALL")
    snaps = rows(db_path, "SELECT count(*) FROM batch_snapshots")[0][0]
    rep = sync(s, full_refresh=True)
    assert sum(r.counts.inserted for r in rep.results) == 0
    assert sum(r.counts.updated for r in rep.results) == 0
    assert rows(db_path, "SELECT provider, batch_id, content_hash, last_changed_at "
                         "FROM batches ORDER BY ALL") == before
    assert rows(db_path, "SELECT count(*) FROM batch_snapshots")[0][0] == snaps


def test_incremental_sync_follows_changes_and_new_batches(make_gateway: Any, db_path: str
                                                          ) -> None:
    gw = make_gateway(600, seed=3, future_share=0.3)
    s = settings_for(gw, db_path, page_limit=20)
    sync(s)
    gw.advance(6 * 3600)
    rep = sync(s)
    assert sum(r.counts.inserted for r in rep.results) > 0  # new arrivals
    assert sum(r.counts.updated for r in rep.results) > 0  # lifecycle moved on
    assert sum(r.refetched for r in rep.results) > 0  # followed by id
    assert_matches_truth_open_batches(gw, db_path)


def _plan(provider: str, bid: str, created: int, **kw: Any) -> Plan:
    base: dict[str, Any] = dict(
        provider=provider, id=bid, created_at=created, validate_s=600, run_s=3600,
        finalize_s=600, outcome="completed", total=100, fail_ratio=0.0, model="gpt-4o-mini",
        endpoint="/v1/chat/completions", metadata={"team": "search"}, cache=None, n_errors=0)
    base.update(kw)
    return Plan(**base)


def test_lifecycle_across_four_syncs_leaves_four_snapshots(make_gateway: Any, db_path: str
                                                           ) -> None:
    now = int(datetime.now(UTC).timestamp())
    plan = _plan("openai", "batch_life", now - 300)
    gw = make_gateway(0, providers=("openai",), now=now, plans=[plan])
    s = settings_for(gw, db_path)
    seen, stamps = [], []
    for step in (0, 600, 3600, 600):  # validating, in_progress, finalizing, completed
        gw.advance(step)
        sync(s)
        seen.append(rows(db_path, "SELECT status FROM batches")[0][0])
        stamps.append(rows(db_path, "SELECT first_seen_at, last_changed_at FROM batches")[0])
    assert seen == ["validating", "in_progress", "finalizing", "completed"]
    # a change replaces the stored version (one row, still) and keeps when it was first seen
    assert rows(db_path, "SELECT count(*) FROM batches")[0][0] == 1
    assert {first for first, _ in stamps} == {stamps[0][0]}
    assert [changed for _, changed in stamps] == sorted({c for _, c in stamps})
    snaps = rows(db_path, "SELECT status_norm FROM batch_snapshots ORDER BY observed_at")
    assert [r[0] for r in snaps] == seen
    q, p, t = rows(db_path, "SELECT queue_s, processing_s, total_s FROM batches")[0]
    assert (q, p, t) == (600.0, 3600.0 + 600.0, 600.0 + 3600.0 + 600.0)
    # a fifth sync with no change appends nothing and does not touch last_changed_at
    changed = rows(db_path, "SELECT last_changed_at FROM batches")[0][0]
    rep = sync(s)
    assert rep.results[0].counts.updated == 0
    assert rows(db_path, "SELECT count(*) FROM batch_snapshots")[0][0] == 4
    assert rows(db_path, "SELECT last_changed_at FROM batches")[0][0] == changed
    trans = rows(db_path, "SELECT from_status, status FROM v_status_transitions "
                          "ORDER BY entered_at")
    assert trans == [(None, "validating"), ("validating", "in_progress"),
                     ("in_progress", "finalizing"), ("finalizing", "completed")]


def test_batch_outside_the_list_window_is_followed_by_id(make_gateway: Any, db_path: str
                                                         ) -> None:
    now = int(datetime.now(UTC).timestamp())
    slow = _plan("openai", "batch_slow", now - 3 * 86400, run_s=10 * 86400)
    old_done = [_plan("openai", f"batch_old{i}", now - 2 * 86400 - i * 7200, run_s=60)
                for i in range(8)]
    gw = make_gateway(0, providers=("openai",), now=now, plans=[slow, *old_done])
    s = settings_for(gw, db_path, page_limit=2, overlap_s=60)
    sync(s)
    # a day of new arrivals pushes the slow batch far below the watermark
    for i in range(6):
        gw.add_plan(_plan("openai", f"batch_new{i}", now + 3600 + i * 60, run_s=60))
    gw.advance(2 * 86400 + 7200)
    gw.requests.clear()
    rep = sync(s)
    assert rep.results[0].refetched == 1  # only the open one, never the finished ones
    assert gw.requests[("retrieve", "openai")] == 1
    assert rows(db_path, "SELECT status FROM batches WHERE batch_id = 'batch_slow'")[0][0] \
        == "in_progress"
    gw.advance(9 * 86400)
    sync(s)
    assert rows(db_path, "SELECT status FROM batches WHERE batch_id = 'batch_slow'")[0][0] \
        == "completed"
    gw.requests.clear()
    sync(s)
    assert gw.requests[("retrieve", "openai")] == 0  # terminal: never fetched again


def test_full_refresh_converges_to_the_incremental_state(make_gateway: Any, tmp_path: Any
                                                        ) -> None:
    gw = make_gateway(250, seed=5, future_share=0.3)
    inc, full = str(tmp_path / "inc.duckdb"), str(tmp_path / "full.duckdb")
    for _ in range(3):
        sync(settings_for(gw, inc))
        gw.advance(5 * 3600)
    sync(settings_for(gw, inc))
    sync(settings_for(gw, full), full_refresh=True)
    cols = ", ".join(c.name for c in BATCHES.columns
                     if c.tracked and c.name not in ("is_overdue",))
    q = f"SELECT {cols} FROM batches ORDER BY provider, batch_id"
    assert rows(inc, q) == rows(full, q)


def test_watermark_is_stored_and_bounds_the_listing(make_gateway: Any, db_path: str) -> None:
    gw = make_gateway(1000, seed=9)
    s = settings_for(gw, db_path, page_limit=20, results=False)  # the listing's business
    first = sync(s)
    marks = dict(rows(db_path, "SELECT provider, watermark FROM sync_state"))
    assert set(marks) == set(gw.providers)
    second = sync(s)
    for a, b in zip(first.results, second.results, strict=True):
        if a.provider in s.unordered_providers:
            assert b.pages == a.pages  # Bedrock's multi-key listing is always read in full
            continue
        assert b.pages < a.pages, "incremental listing should stop near the watermark"
        assert b.watermark_used is not None
    used = rows(db_path, "SELECT count(*) FROM sync_runs WHERE watermark_used IS NOT NULL")
    assert used[0][0] == len(gw.providers)


def test_metadata_can_be_grouped_by_key(gateway: Any, db_path: str) -> None:
    sync(settings_for(gateway, db_path))
    teams = rows(db_path, "SELECT value, count(*) FROM batch_metadata WHERE key = 'team' "
                          "GROUP BY value ORDER BY value")
    want: dict[str, int] = {}
    for p in gateway.providers:
        for o in gateway.truth(p):
            t = (o.get("metadata") or {}).get("team")
            if t:
                want[t] = want.get(t, 0) + 1
    assert dict(teams) == want


def test_derived_deadline_and_overdue(make_gateway: Any, db_path: str) -> None:
    now = int(datetime.now(UTC).timestamp())
    late = _plan("openai", "batch_late", now - 2 * 86400, run_s=10 * 86400)
    gw = make_gateway(0, providers=("openai",), now=now, plans=[late])
    sync(settings_for(gw, db_path))
    w, deadline, overdue = rows(
        db_path, "SELECT completion_window_s, deadline_at, is_overdue FROM batches")[0]
    assert w == 86400
    assert deadline == datetime.fromtimestamp(now - 2 * 86400, UTC) + timedelta(days=1)
    assert overdue is True
    late_rows = rows(db_path, "SELECT batch_id, late_s FROM v_overdue")
    assert late_rows[0][0] == "batch_late" and late_rows[0][1] >= 86400 - 5


def test_a_row_key_collision_does_not_merge_two_batches(gateway: Any, db_path: str) -> None:
    """row_key is a 63-bit hash: a stored batch sharing one with an incoming batch must not be
    taken for it (matches are confirmed on provider and batch_id)."""
    s = settings_for(gateway, db_path)
    sync(s)
    n = rows(db_path, "SELECT count(*) FROM batches")[0][0]
    con = duckdb.connect(db_path)
    con.execute("INSERT INTO batches SELECT * REPLACE ('collider' AS batch_id, "
                "'other content' AS content_hash) FROM batches WHERE provider = 'openai' "
                "LIMIT 1")
    con.close()
    rep = sync(s, full_refresh=True)
    assert sum(r.counts.inserted for r in rep.results) == 0
    assert sum(r.counts.updated for r in rep.results) == 0
    assert sum(r.counts.unchanged for r in rep.results) == n
    assert rows(db_path, "SELECT content_hash FROM batches WHERE batch_id = 'collider'"
                ) == [("other content",)]
    assert rows(db_path, "SELECT count(*), count(DISTINCT (provider, batch_id)) FROM batches"
                ) == [(n + 1, n + 1)]


def test_last_seen_at_moves_for_open_batches_only(make_gateway: Any, db_path: str) -> None:
    now = int(datetime.now(UTC).timestamp())
    running = _plan("openai", "batch_running", now - 900, run_s=86400)
    done = _plan("openai", "batch_done", now - 7200, run_s=60)
    gw = make_gateway(0, providers=("openai",), now=now, plans=[running, done])
    s = settings_for(gw, db_path)
    sync(s)
    q = "SELECT batch_id, status, last_seen_at, last_changed_at FROM batches ORDER BY 1"
    before = {r[0]: r[1:] for r in rows(db_path, q)}
    assert before["batch_done"][0] == "completed" and before["batch_running"][0] == "in_progress"
    rep = sync(s)
    assert rep.results[0].counts.unchanged == 2
    after = {r[0]: r[1:] for r in rows(db_path, q)}
    assert after["batch_running"][1] > before["batch_running"][1]  # re-confirmed still open
    assert after["batch_running"][2] == before["batch_running"][2]  # but not changed
    assert after["batch_done"] == before["batch_done"]  # final: left alone


def test_a_sync_leaves_the_interpreters_thread_switching_and_gc_as_they_were(
        gateway: Any, db_path: str) -> None:
    import gc
    import sys

    before = sys.getswitchinterval(), gc.get_threshold()
    during: list[tuple[float, tuple[int, int, int]]] = []
    sync(settings_for(gateway, db_path),
         on_progress=lambda *_: during.append((sys.getswitchinterval(), gc.get_threshold())))
    assert (sys.getswitchinterval(), gc.get_threshold()) == before
    assert during and all(s < before[0] and g[0] >= 10_000 and g[1:] == before[1][1:]
                          for s, g in during)
