"""batchlake retry on the command line: the summary a person reads (by reason, by source
batch, the files, the estimate said to be one, what was left out, whether the gateway was
written to), JSON with every figure, --inputs taking several files, and every expected
mistake as one line with a non-zero exit; once as a real process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from batchlake.simulator import input_body
from tests.cli_runner import invoke
from tests.conftest import run_cli
from tests.retry_fixtures import (
    expected_retries,
    finished_plans,
    lake_copy,
    synced,
    writes,
    written_by_source,
)

FAST = {"BATCHLAKE_BACKOFF_BASE_S": "0.01"}


def _args(gw: Any, db: str, out: Path, provider: str, *more: str) -> list[str]:
    return ["retry", "--provider", provider, "--out", str(out), "--db", db, "--base-url",
            gw.base_url, *more]


def test_the_summary_says_what_was_written_and_what_it_may_cost(
        openai_lake: Any, tmp_path: Path) -> None:
    gw, db_path = lake_copy(openai_lake, tmp_path)
    res = invoke(*_args(gw, db_path, tmp_path / "out", "openai"), env=FAST)
    assert res.returncode == 0, res.stderr
    n = len(expected_retries(gw, "openai"))
    assert f": {n:,} openai requests that did not succeed, in " in res.stdout
    for part in ("by reason", "by source batch", "errored", "no_result_line",
                 "estimated cost: about $", "an estimate", "nothing was written to the gateway"):
        assert part in res.stdout, part
    assert writes(gw) == 0
    js = invoke(*_args(gw, db_path, tmp_path / "out", "openai", "--format", "json"), env=FAST)
    data = json.loads(js.stdout)
    assert data["requests"] == n == sum(f["requests"] for f in data["files"])
    assert sum(r["requests"] for r in data["by_reason"]) == n
    assert data["submitted"] is False


def test_submit_prints_each_upload_and_batch_created(make_gateway: Any, db_path: str,
                                                      tmp_path: Path) -> None:
    gw = make_gateway(30, seed=5, providers=("openai",))  # several files: each is printed
    synced(gw, db_path)
    res = invoke(*_args(gw, db_path, tmp_path / "out", "openai", "--submit"), env=FAST)
    assert res.returncode == 0, res.stderr
    created = [p.id for p in gw.files.created]
    assert created and all(f"created openai batch {b} from retry_" in res.stdout
                           for b in created)
    assert res.stdout.count("uploaded retry_") == len(created)
    again = invoke(*_args(gw, db_path, tmp_path / "out", "openai", "--submit"), env=FAST)
    assert again.returncode == 1 and "--force" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1 and "Traceback" not in again.stderr


def test_inputs_take_several_files(make_gateway: Any, db_path: str, tmp_path: Path) -> None:
    gw = make_gateway(80, seed=5, providers=("anthropic",))
    synced(gw, db_path)
    plan = next(p for p in finished_plans(gw, "anthropic")
                if expected_retries(gw, "anthropic", [p]))
    lines = input_body(plan, gw.results_max_lines).split(b"\n")
    half = len(lines) // 2
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_bytes(b"\n".join(lines[:half]))
    b.write_bytes(b"\n".join(lines[half:]))
    res = invoke(*_args(gw, db_path, tmp_path / "out", "anthropic", "--batch", plan.id,
                        "--inputs", str(a), str(b)), env=FAST)
    assert res.returncode == 0, res.stderr
    assert written_by_source(tmp_path / "out", "anthropic") == \
        expected_retries(gw, "anthropic", [plan])


@pytest.mark.parametrize("extra,message", [
    ((), "anthropic batches take their requests inline: the gateway has no input file); "
         "pass --inputs FILE…"),
    (("--since", "soon"), "duration 'soon' is not like 30m, 2h, 7d or 1w"),
    (("--inputs", "nope.jsonl"), "--inputs nope.jsonl: no such file"),
    (("--format", "yaml"), "unknown format 'yaml'; use text or json"),
])
def test_expected_mistakes_are_one_line(make_gateway: Any, db_path: str, tmp_path: Path,
                                        extra: tuple[str, ...], message: str) -> None:
    gw = make_gateway(40, seed=5, providers=("anthropic",))
    synced(gw, db_path)
    res = invoke(*_args(gw, db_path, tmp_path / "out", "anthropic", *extra), env=FAST)
    assert res.returncode != 0
    assert message in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr


def test_an_output_path_that_is_a_file_and_a_missing_database_are_one_line(
        tmp_path: Path) -> None:
    afile = tmp_path / "f"
    afile.write_text("x")
    res = invoke("retry", "--provider", "openai", "--out", str(afile), "--db",
                 str(tmp_path / "x.duckdb"))
    assert res.returncode == 2 and "is a file; pass a folder" in res.stderr
    res = invoke("retry", "--provider", "openai", "--out", str(tmp_path / "o"), "--db",
                 str(tmp_path / "none.duckdb"))
    assert res.returncode != 0 and "no database at" in res.stderr
    assert not (tmp_path / "none.duckdb").exists()


def test_retry_as_a_real_process(make_gateway: Any, db_path: str, tmp_path: Path) -> None:
    gw = make_gateway(60, seed=5, providers=("azure",))
    synced(gw, db_path)
    proc = run_cli(*_args(gw, db_path, tmp_path / "out", "azure"), env=FAST)
    assert proc.returncode == 0, proc.stderr
    assert "by source batch" in proc.stdout and "Traceback" not in proc.stderr
    assert written_by_source(tmp_path / "out", "azure") == expected_retries(gw, "azure")
