"""Each analytics view checked for its numbers on a small dataset whose answers are known."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import batchlake
from batchlake.transforms import flatten_objects
from batchlake.warehouse import Warehouse

NOW = datetime.now(UTC).replace(microsecond=0)
DAY = int((NOW - timedelta(days=2)).replace(hour=6, minute=0, second=0).timestamp())


def batch(bid: str, status: str, *, created: int = DAY, queue: int | None = None,
          run: int | None = None, total: int = 10, done: int = 10, failed: int = 0,
          model: str = "gpt-4o", errors: list[dict[str, Any]] | None = None,
          cache: dict[str, Any] | None = None, latency: int = 0, window: str = "24h",
          request_type: str = "batch_retrieve") -> dict[str, Any]:
    o: dict[str, Any] = {
        "id": bid, "status": status, "endpoint": "/v1/chat/completions",
        "completion_window": window, "created_at": created,
        "request_counts": {"total": total, "completed": done, "failed": failed},
        "extra_fields": {"request_type": request_type, "model_requested": model,
                         "latency": latency, "chunk_index": 0},
    }
    if queue is not None:
        o["in_progress_at"] = created + queue
        if run is not None:
            o[{"completed": "completed_at", "failed": "failed_at"}.get(status,
                                                                      "completed_at")] = \
                created + queue + run
    if errors:
        o["errors"] = {"object": "list", "data": errors}
    if cache:
        o["extra_fields"]["cache_debug"] = cache
    return o


OPENAI = [
    batch("o1", "completed", queue=100, run=1000, done=9, failed=1, latency=100,
          cache={"cache_hit": True, "hit_type": "direct"}),
    batch("o2", "completed", queue=300, run=3000, done=10, latency=200,
          cache={"cache_hit": True, "hit_type": "semantic", "similarity": 0.95,
                 "threshold": 0.9, "input_tokens": 400}),
    batch("o3", "failed", queue=0, run=0, done=0, failed=10, latency=300,
          errors=[{"code": "invalid_request", "message": "bad line", "line": 1},
                  {"code": "invalid_request", "message": "bad line", "line": 2},
                  {"code": "model_not_found", "message": "no model"}],
          cache={"cache_hit": False}),
    # open and two days old with a 24h window: overdue by ~a day
    batch("o4", "in_progress", queue=50, done=2, latency=400),
]
ANTHROPIC = [
    batch("a1", "ended", queue=10, run=90, model="claude", done=5, failed=5, latency=1000,
          errors=[{"code": "invalid_request", "message": "bad line"}]),
    # created an hour ago: not overdue yet
    batch("a2", "in_progress", created=int(NOW.timestamp()) - 3600, queue=60, model="claude"),
]


@pytest.fixture
def con(tmp_path: Any) -> Any:
    db = str(tmp_path / "views.duckdb")
    with Warehouse(db) as wh:
        for provider, objs in (("openai", OPENAI), ("anthropic", ANTHROPIC)):
            flat = flatten_objects(objs, provider, as_of=NOW)
            assert not flat.rejects
            wh.load_chunk(flat, run_id="r1", observed_at=NOW)
    c = batchlake.connect(db)
    yield c
    c.close()


def q(con: Any, sql: str) -> list[dict[str, Any]]:
    return batchlake.frame(con, sql).to_dicts()


def test_daily_summary(con: Any) -> None:
    r = q(con, "SELECT * FROM v_daily_summary WHERE provider = 'openai'")
    assert len(r) == 1
    row = r[0]
    assert (row["batches"], row["completed"], row["failed"], row["in_flight"]) == (4, 2, 1, 1)
    assert (row["requests_total"], row["requests_completed"], row["requests_failed"]) == \
        (40, 21, 11)
    assert row["success_rate"] == pytest.approx(21 / 32, abs=1e-4)
    assert row["day"] == datetime.fromtimestamp(DAY, UTC).date()


def test_durations(con: Any) -> None:
    r = q(con, "SELECT * FROM v_durations WHERE provider = 'openai'")[0]
    assert r["batches"] == 4 and r["finished"] == 3
    assert r["queue_p50_s"] == pytest.approx(75.0)  # 0, 50, 100, 300 interpolated
    assert r["processing_p50_s"] == pytest.approx(1000.0)  # 0, 1000, 3000
    assert r["total_p90_s"] == pytest.approx(1100 + 0.8 * (3300 - 1100))


def test_overdue(con: Any) -> None:
    r = q(con, "SELECT * FROM v_overdue")
    assert [x["batch_id"] for x in r] == ["o4"]
    assert r[0]["late_s"] == pytest.approx((datetime.now(UTC) - datetime.fromtimestamp(
        DAY + 86400, UTC)).total_seconds(), abs=5)


def test_error_codes(con: Any) -> None:
    r = {(x["provider"], x["code"]): x for x in q(con, "SELECT * FROM v_error_codes")}
    inv = r[("openai", "invalid_request")]
    assert (inv["errors"], inv["batches"], inv["top_message"]) == (2, 1, "bad line")
    assert inv["example_batches"] == ["o3"]
    assert r[("anthropic", "invalid_request")]["errors"] == 1
    assert r[("openai", "model_not_found")]["errors"] == 1


def test_cache(con: Any) -> None:
    r = {x["hit_type"]: x for x in q(con, "SELECT * FROM v_cache WHERE provider = 'openai'")}
    assert set(r) == {"direct", "semantic", "miss"}
    assert r["semantic"]["input_tokens_from_cache"] == 400
    assert r["miss"]["hit_rate"] == 0 and r["direct"]["hit_rate"] == 1
    sim = q(con, "SELECT * FROM v_cache_similarity")
    assert len(sim) == 1 and sim[0]["margin_bucket"] == pytest.approx(0.04)
    assert sim[0]["avg_similarity"] == pytest.approx(0.95)


def test_latency(con: Any) -> None:
    r = q(con, "SELECT * FROM v_latency WHERE provider = 'openai'")[0]
    assert r["calls"] == 4 and r["request_type"] == "batch_retrieve"
    assert r["p50_ms"] == pytest.approx(250.0)
    assert r["p95_ms"] == pytest.approx(300 + 0.85 * 100)


def test_status_transitions_and_time(tmp_path: Any) -> None:
    db = str(tmp_path / "t.duckdb")
    t0 = NOW - timedelta(hours=3)
    states = [("validating", None), ("in_progress", 60), ("in_progress", 60),
              ("completed", 60)]
    with Warehouse(db) as wh:
        for i, (status, queue) in enumerate(states):
            obj = batch("x1", status, queue=queue, run=600 if status == "completed" else None,
                        done=i)
            wh.load_chunk(flatten_objects([obj], "openai", as_of=t0),
                          run_id=f"r{i}", observed_at=t0 + timedelta(minutes=30 * i))
    con = batchlake.connect(db)
    try:
        tr = q(con, "SELECT status, seconds_in_status FROM v_status_transitions "
                    "ORDER BY entered_at")
        assert tr == [{"status": "validating", "seconds_in_status": 1800},
                      {"status": "in_progress", "seconds_in_status": 3600},
                      {"status": "completed", "seconds_in_status": None}]
        st = {x["status"]: x["p50_s"] for x in q(con, "SELECT * FROM v_status_time")}
        assert st == {"validating": 1800, "in_progress": 3600}
    finally:
        con.close()


def test_views_helper_returns_every_view(con: Any) -> None:
    frames = batchlake.views(con)
    assert set(frames) >= {"v_daily_summary", "v_overdue", "v_cache", "v_status_transitions"}
    assert frames["v_overdue"].height == 1


def test_a_batch_in_several_parts_of_one_load_keeps_the_last_with_its_children(
        tmp_path: Any) -> None:
    """One load transaction spans several flattened parts: a batch seen in two of them (a
    gateway repeating ids across pages) is one row, with the later part's values, errors and
    metadata, and one snapshot."""
    db = str(tmp_path / "parts.duckdb")
    first = batch("d1", "in_progress", queue=60, done=3,
                  errors=[{"code": "old", "message": "first"}, {"code": "old2", "message": "x"}])
    first["metadata"] = {"team": "a", "job": "nightly"}
    last = batch("d1", "completed", queue=60, run=600, done=10,
                 errors=[{"code": "new", "message": "last"}])
    last["metadata"] = {"team": "b"}
    other = batch("d2", "completed", queue=60, run=60)
    with Warehouse(db) as wh:
        parts = [wh.stage_chunk(flatten_objects(objs, "openai", as_of=NOW))
                 for objs in ([first, other], [last])]
        counts = wh.load_staged(parts, run_id="r1", observed_at=NOW)
    assert (counts.inserted, counts.updated, counts.snapshots) == (2, 0, 2)
    c = batchlake.connect(db)
    try:
        assert c.execute("SELECT batch_id, status, request_completed FROM batches "
                         "ORDER BY 1").fetchall() == [("d1", "completed", 10),
                                                      ("d2", "completed", 10)]
        assert c.execute("SELECT code FROM batch_errors WHERE batch_id = 'd1'"
                         ).fetchall() == [("new",)]
        assert c.execute("SELECT key, value FROM batch_metadata WHERE batch_id = 'd1'"
                         ).fetchall() == [("team", "b")]
        assert c.execute("SELECT count(*) FROM batch_snapshots WHERE batch_id = 'd1'"
                         ).fetchall() == [(1,)]
    finally:
        c.close()
