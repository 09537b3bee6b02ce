"""Readers and the scheduled sync coexist: a reader never holds the file longer than a query, a
read command waits for a running sync (and says so), read commands never create a database,
and a sync can publish a read-only snapshot for tools that keep a connection open."""

from __future__ import annotations

import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

import batchlake
from batchlake.pipeline import sync
from batchlake.simulator import DROP, Fault, SimGateway
from tests.cli_runner import invoke
from tests.conftest import rows, run_cli, settings_for
from tests.expect import assert_matches_truth
from tests.locks import hold_lock, run_cli_once_it_waits

READER = """
import sys, time
import batchlake
lake = batchlake.connect(sys.argv[1])
print("reading", flush=True)
end = time.monotonic() + float(sys.argv[2])  # a bound, should the test stop reading
while time.monotonic() < end:
    lake.frame("SELECT count(*) AS n FROM batches")
    print("read", flush=True)
    time.sleep(0.1)
"""


def test_a_sync_completes_while_another_process_reads_every_100ms(
        make_gateway: Any, db_path: str) -> None:
    gw = make_gateway(1500, seed=5)
    sync(settings_for(gw, db_path, providers=("openai",)))
    reader = subprocess.Popen([sys.executable, "-c", READER, db_path, "60"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "reading"
        gw.advance(6 * 3600)
        res = run_cli("sync", "--base-url", gw.base_url, "--db", db_path, "--quiet",
                      "--full-refresh", "--lock-timeout", "20")
        assert res.returncode == 0, res.stderr
        # The reader goes on reading once the sync is done (ten more reads; its own bound
        # ends it, and this loop, if it stalls). How many fit beside the sync depends on the
        # sync's length, so that is not counted.
        after = [reader.stdout.readline().strip() for _ in range(10)]
        assert after == ["read"] * 10, after
        assert reader.poll() is None  # still reading: no error ended it
    finally:
        reader.kill()
        _, errs = reader.communicate(timeout=60)
    assert "Traceback" not in errs, errs
    assert_matches_truth(gw, db_path)


def test_a_read_command_waits_for_a_running_sync_and_says_so(gateway: SimGateway,
                                                            db_path: str) -> None:
    sync(settings_for(gateway, db_path))
    res = run_cli_once_it_waits(db_path, "sql", "SELECT count(*) AS n FROM batches", "--db",
                                db_path, "--format", "csv")  # a sync holds the file a moment
    assert res.returncode == 0, res.stderr
    assert "waiting" in res.stderr and "in use by another process" in res.stderr
    assert res.stdout.splitlines()[1] == str(rows(db_path, "SELECT count(*) FROM batches")[0][0])


def test_a_read_command_gives_up_after_its_wait_in_one_line(gateway: SimGateway,
                                                           db_path: str) -> None:
    sync(settings_for(gateway, db_path))
    holder = hold_lock(db_path, 30)
    try:
        res = run_cli("report", "--db", db_path, "--wait", "0.5")
    finally:
        holder.kill()
        holder.wait()
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "in use by another process" in res.stderr.strip().splitlines()[-1]


def test_the_python_api_holds_the_file_only_while_it_reads(gateway: SimGateway,
                                                          db_path: str) -> None:
    sync(settings_for(gateway, db_path))
    lake = batchlake.connect(db_path)  # what a notebook keeps between cells
    before = batchlake.frame(lake, "SELECT count(*) AS n FROM batches")["n"][0]
    gateway.advance(3 * 3600)
    report = sync(settings_for(gateway, db_path, lock_timeout_s=2))  # does not wait 2 s
    assert not report.failed
    assert set(batchlake.views(lake)) >= {"v_daily_summary", "v_overdue"}
    assert batchlake.frame(lake, "SELECT count(*) AS n FROM batches")["n"][0] >= before
    assert lake.execute("SELECT 1").fetchall() == [(1,)]


@pytest.mark.parametrize("args", [
    ["export", "parquet", "OUT"],
    ["report"],
    ["stuck"],
    ["sql", "SELECT 1"],
])
def test_read_commands_never_create_a_database(tmp_path: Path, args: list[str]) -> None:
    db = tmp_path / "no" / "such.duckdb"
    args = [str(tmp_path / "out") if a == "OUT" else a for a in args]
    res = invoke(*args, "--db", str(db))
    assert res.returncode != 0 and "Traceback" not in res.stderr + res.stdout
    assert len(res.stderr.strip().splitlines()) == 1 and "no database at" in res.stderr
    assert not db.exists() and not db.parent.exists()


def test_a_refused_fetch_says_why_in_one_line_and_keeps_the_reject(make_gateway: Any,
                                                                   db_path: str) -> None:
    gw = make_gateway(30, seed=3, providers=("anthropic",))
    plan = gw.by_provider["anthropic"][0]
    plan.overrides["created_at"] = 9223372036854775807
    res = invoke("fetch", plan.id, "--provider", "anthropic", "--db", db_path,
                 "--base-url", gw.base_url)
    assert res.returncode != 0 and "Traceback" not in res.stderr + res.stdout
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "was refused" in lines[0] and "created_at" in lines[0], lines
    assert rows(db_path, "SELECT batch_id FROM rejects") == [(plan.id,)]
    plan.overrides["status"] = DROP  # an object with no status is refused too
    del plan.overrides["created_at"]
    res = invoke("fetch", plan.id, "--provider", "anthropic", "--db", db_path,
                 "--base-url", gw.base_url)
    assert res.returncode != 0 and "status" in res.stderr


def _storage_version(path: Path) -> int:
    with path.open("rb") as f:
        header = f.read(20)
    assert header[8:12] == b"DUCK"
    return int(struct.unpack("<Q", header[12:20])[0])


def test_a_published_snapshot_is_replaced_whole_after_the_last_commit(
        make_gateway: Any, tmp_path: Path) -> None:
    gw = make_gateway(400, seed=9, future_share=0.3)
    db, snap = str(tmp_path / "live.duckdb"), tmp_path / "published.duckdb"
    res = invoke("sync", "--base-url", gw.base_url, "--db", db, "--quiet",
                 "--publish", str(snap), "--publish-storage-version", "v1.4.0")
    assert res.returncode == 0, res.stderr
    # DuckDB 1.4 readers open storage version 64-67; DuckDB 2.0's own is newer
    assert _storage_version(snap) <= 67 < _storage_version(Path(db))
    held = duckdb.connect(str(snap), read_only=True)  # a BI tool that keeps it open
    first = held.execute("SELECT count(*) FROM batches").fetchall()[0][0]
    assert first == rows(db, "SELECT count(*) FROM batches")[0][0]
    held.execute("SELECT * FROM v_daily_summary").fetchall()  # the views travel too
    gw.advance(86400)  # new batches arrive
    # the second sync's gateway is slow, so the snapshot is checked while it runs
    gw.faults = [Fault("delay", endpoint="list", times=-1, delay_s=0.05)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchlake", "sync", "--base-url", gw.base_url, "--db", db,
         "--quiet", "--publish", str(snap)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        while proc.poll() is None:
            assert held.execute("SELECT count(*) FROM batches").fetchall()[0][0] == first
            fresh = duckdb.connect(str(snap), read_only=True)  # never half-written
            assert fresh.execute("SELECT count(*) FROM batches").fetchall()[0][0] >= first
            fresh.close()
            time.sleep(0.05)
        assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        proc.kill()
    assert held.execute("SELECT count(*) FROM batches").fetchall()[0][0] == first
    held.close()
    now = duckdb.connect(str(snap), read_only=True)
    assert now.execute("SELECT count(*) FROM batches").fetchall()[0][0] == \
        rows(db, "SELECT count(*) FROM batches")[0][0] > first
    now.close()
    assert not list(tmp_path.glob(".published.duckdb.*"))  # no temporary file left


@pytest.mark.parametrize(("args", "needle"), [
    (["--publish-storage-version", "1.4"], "not like v1.4.0"),
    (["--publish", "SELF"], "the database itself"),
])
def test_bad_publish_options_are_one_line(gateway: SimGateway, db_path: str,
                                         args: list[str], needle: str) -> None:
    args = ["--publish", db_path] if "SELF" in args else ["--publish", db_path + ".pub", *args]
    res = invoke("sync", "--base-url", gateway.base_url, "--db", db_path, *args)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert needle in res.stderr and len(res.stderr.strip().splitlines()) == 1
