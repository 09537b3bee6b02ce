"""The bench scripts run (at toy sizes: figures are the scripts' business, not the tests'):
a change to a helper they share broke three of them for a session without a test noticing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PREFECT_GROUP

ROOT = Path(__file__).resolve().parent.parent


def bench(script: str, *args: str) -> str:
    res = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args],
                         capture_output=True, text=True, cwd=ROOT, timeout=240)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "failed" not in res.stderr, res.stderr[-2000:]
    return res.stdout


@pytest.mark.slow
def test_bench_sync_prints_every_contender_and_the_ratios() -> None:
    out = bench("bench_sync.py", "--sizes", "300", "--runs", "1", "--no-dlt")
    for line in ("fetch-stdlib", "fetch-httpx", "batchlake", "batchlake / fetch-httpx"):
        assert line in out, out


@pytest.mark.slow
def test_bench_incremental_prints_each_sync_and_the_scheduled_runs() -> None:
    out = bench("bench_incremental.py", "--size", "500", "--runs", "2")
    for line in ("full ", "re-sync", "incremental", "full again", "with the backoff"):
        assert line in out, out


@pytest.mark.slow
def test_bench_results_prints_lines_per_second_against_the_peers() -> None:
    # one encoding: the loop is the same for each (tests/test_stream_escapes.py reads them all)
    out = bench("bench_results.py", "--requests", "500", "--repeat", "1", "--encodings", "go")
    assert "lines/s" in out and "vs fetch+parse" in out, out


@pytest.mark.slow
@pytest.mark.prefect
@PREFECT_GROUP
def test_bench_overhead_prints_each_way_of_running_a_sync(
        prefect_api: tuple[str, dict[str, str]]) -> None:
    out = bench("bench_overhead.py", "--size", "300", "--repeat", "1",
                "--prefect-api", prefect_api[0])
    for line in ("sync core (in process)", "batchlake sync, direct",
                 "batchlake sync, Prefect flow run"):
        assert line in out, out


@pytest.mark.slow
def test_bench_latency_prints_the_listing_floor_the_drains_and_the_targets() -> None:
    out = bench("bench_latency.py", "--batches", "80", "--listing-batches", "200", "--no-sync",
                "--latency", "list=30ms,retrieve=20ms,results=60ms")
    for line in ("listing", "drain, cap 12", "the floor", "the 40/s target",
                 "answered 429 (bound 10%)"):
        assert line in out, out


def test_bench_retry_prints_peak_memory_against_the_target_and_the_baseline() -> None:
    out = bench("bench_retry.py", "--requests", "300", "--padding", "100", "--repeat", "1")
    assert "peak RSS" in out and "the 300 MB target" in out and "vs fetch+load" in out, out
