"""batchlake retry over real HTTP, per provider: the files hold exactly the requests of the
selected batches that did not succeed (errored, expired, cancelled, in a failed batch, or
never answered), each line byte for byte as the input had it, a custom_id once a file, one
endpoint and model a file; inputs the gateway cannot give need --inputs, said in one line;
faults on the input file are retried and a cut body never half used; nothing is written to
the gateway and no prompt reaches the database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

import batchlake.retry_files as retry_files
from batchlake.common import BatchlakeError, ConfigError
from batchlake.simulator import Fault, input_body
from tests.conftest import rows
from tests.retry_fixtures import (
    KEY,
    content_requests,
    expected_retries,
    failed_line_ids,
    finished_plans,
    input_lines,
    lake_copy,
    prompt_in_database,
    retry_into,
    synced,
    writes,
    written,
    written_by_source,
)


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHLAKE_BACKOFF_BASE_S", "0.01")


@pytest.mark.parametrize("provider", ["openai", "azure", "bedrock", "gemini"])
def test_the_files_hold_exactly_what_did_not_succeed_unchanged(
        make_gateway: Any, db_path: str, tmp_path: Path, provider: str) -> None:
    gw = make_gateway(60, seed=5, providers=(provider,), gemini_file_content=True)
    synced(gw, db_path)
    rep = retry_into(gw, db_path, tmp_path / "out", provider)
    got = written_by_source(tmp_path / "out", provider)
    want = expected_retries(gw, provider)
    assert want and set(got) == set(want)
    assert got == want  # every line the bytes the input had
    assert rep.total == len(want) == rep.by_reason()["requests"].sum()
    reasons = set(rep.requests["reason"])
    assert {"errored", "no_result_line"} <= reasons, reasons
    for lines in written(tmp_path / "out").values():
        objs = [orjson.loads(ln) for ln in lines]
        if provider in ("openai", "azure"):
            assert len({o["url"] for o in objs}) == 1
            assert len({o["body"].get("model") for o in objs}) == 1
    assert writes(gw) == 0  # nothing but reads without --submit
    assert prompt_in_database(db_path) == []
    # one content request per chain with something to retry, no more (Bedrock's request
    # counts are 0: which of its batches has requests without a line, only the input says)
    read = finished_plans(gw, provider) if provider == "bedrock" else {b for b, _ in want}
    assert content_requests(gw) == len(read)


def test_a_rerun_writes_the_same_files_and_replaces_an_earlier_runs(
        openai_lake: Any, tmp_path: Path) -> None:
    gw, db_path = lake_copy(openai_lake, tmp_path)
    out = tmp_path / "out"
    first = retry_into(gw, db_path, out, "openai")
    before = written(out)
    second = retry_into(gw, db_path, out, "openai", error_code="batch_cancelled")
    after = written(out)
    assert set(after) < set(before)  # the first run's other files are gone
    assert all(orjson.loads(ln)["custom_id"] for lines in after.values() for ln in lines)
    third = retry_into(gw, db_path, out, "openai")
    assert written(out) == before
    # what is remembered of runs that only wrote files: the last one
    runs = rows(db_path, "SELECT DISTINCT run_id FROM retry_batches")
    assert runs == [(third.run_id,)] and first.run_id != third.run_id != second.run_id
    assert rows(db_path, "SELECT count(*) FROM retry_requests")[0][0] == third.total


def test_gemini_through_bifrost_and_anthropic_need_their_inputs_and_say_so(
        make_gateway: Any, db_path: str, tmp_path: Path) -> None:
    gw = make_gateway(80, seed=5, providers=("gemini", "anthropic"))
    synced(gw, db_path)
    with pytest.raises(BatchlakeError) as e:
        retry_into(gw, db_path, tmp_path / "out", "gemini")
    assert "--inputs" in str(e.value) and "doesn't support direct content download" in \
        str(e.value) and "\n" not in str(e.value)
    assert content_requests(gw, "gemini") == 1  # Bifrost's 500 here is not worth a retry
    with pytest.raises(BatchlakeError, match=r"take their requests inline.*--inputs"):
        retry_into(gw, db_path, tmp_path / "out", "anthropic")
    assert content_requests(gw, "anthropic") == 0  # never asked: there is no file
    assert not list((tmp_path / "out").iterdir())  # nothing half written


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_the_users_own_inputs_are_joined_by_custom_id(
        make_gateway: Any, db_path: str, tmp_path: Path, provider: str) -> None:
    gw = make_gateway(80, seed=5, providers=(provider,))
    synced(gw, db_path)
    plans = [p for p in finished_plans(gw, provider) if expected_retries(gw, provider, [p])]
    one = plans[0]
    mine = tmp_path / "sent.jsonl"
    mine.write_bytes(input_body(one, gw.results_max_lines))
    retry_into(gw, db_path, tmp_path / "out", provider, batch=one.id, inputs=[str(mine)])
    assert written_by_source(tmp_path / "out", provider) == expected_retries(gw, provider, [one])
    # several batches: the same custom_ids in each, which a file cannot tell apart
    with pytest.raises(ConfigError, match=r"cannot tell their requests apart.*--batch"):
        retry_into(gw, db_path, tmp_path / "out2", provider, inputs=[str(mine)])


def test_failed_requests_without_an_input_line_are_counted_never_guessed(
        openai_lake: Any, tmp_path: Path) -> None:
    gw, db_path = lake_copy(openai_lake, tmp_path)
    plan, gone = next((p, c) for p in finished_plans(gw, "openai")
                      for c in failed_line_ids(gw, p) if c.startswith("request-"))
    want = expected_retries(gw, "openai", [plan])
    lines = [ln for ln in input_lines(gw, plan) if orjson.loads(ln)["custom_id"] != gone]
    kept = lines[0]
    # the file as a user's tool may leave it: a line twice, a broken line, a foreign format
    body = b"\n".join([*lines, kept, b'{"custom_id": "x", "body": ', b'{"key": "k", '
                       b'"request": {}}']) + b"\n"
    gw.files.uploads[("openai", f"file-{plan.id[-10:]}")] = body
    rep = retry_into(gw, db_path, tmp_path / "out", "openai", batch=plan.id)
    got = written_by_source(tmp_path / "out", "openai")
    assert set(got) == set(want) - {(plan.id, gone)}
    notes = " | ".join(rep.notes)
    assert f"1 failed requests of batch {plan.id} have no line" in notes and repr(gone) in notes
    assert "1 custom_ids that appear again" in notes
    assert "2 lines of its input file" in notes and "not openai batch requests" in notes


@pytest.mark.parametrize("fault", [
    Fault("reset", endpoint="file_content", times=2),
    Fault("truncated", endpoint="file_content", times=2),
    Fault("status", endpoint="file_content", status=429, retry_after="0", times=2),
    Fault("status", endpoint="file_content", status=503, times=3),
], ids=["reset", "cut-short", "429", "503"])
def test_input_file_faults_are_retried_and_a_cut_body_never_half_used(
        openai_lake: Any, tmp_path: Path, fault: Fault) -> None:
    gw, db_path = lake_copy(openai_lake, tmp_path)
    plan = next(p for p in finished_plans(gw, "openai")
                if len(expected_retries(gw, "openai", [p])) >= 2)
    gw.faults = [fault]
    times = fault.times
    retry_into(gw, db_path, tmp_path / "out", "openai", batch=plan.id)
    assert written_by_source(tmp_path / "out", "openai") == \
        expected_retries(gw, "openai", [plan])
    assert content_requests(gw) == times + 1
    gw.faults = [Fault("status", endpoint="file_content", status=503, times=-1)]
    with pytest.raises(BatchlakeError, match=r"gateway answered 503.*--inputs"):
        retry_into(gw, db_path, tmp_path / "out2", "openai", batch=plan.id)


def test_error_code_batch_and_since_select_what_is_retried(
        openai_lake: Any, tmp_path: Path) -> None:
    gw, db_path = lake_copy(openai_lake, tmp_path)
    everything = retry_into(gw, db_path, tmp_path / "all", "openai")
    cancelled = retry_into(gw, db_path, tmp_path / "c", "openai", error_code="batch_cancelled")
    assert 0 < cancelled.total < everything.total
    assert set(cancelled.requests["reason"]) == {"canceled"}
    by_reason = retry_into(gw, db_path, tmp_path / "nl", "openai", error_code="no_result_line")
    assert set(by_reason.requests["reason"]) == {"no_result_line"}
    one = everything.requests["source_batch_id"][0]
    only = retry_into(gw, db_path, tmp_path / "one", "openai", batch=one)
    assert set(only.requests["source_batch_id"]) == {one}
    recent = retry_into(gw, db_path, tmp_path / "recent", "openai", since="1m")
    assert recent.total == 0 and not list((tmp_path / "recent").glob("*.jsonl"))
    missing = retry_into(gw, db_path, tmp_path / "none", "openai", batch="batch_nope")
    assert missing.total == 0 and "batch_nope is not in the database" in missing.notes[0]


def test_files_are_split_at_the_providers_limits(
        openai_lake: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> None:
    gw, db_path = lake_copy(openai_lake, tmp_path)
    whole = retry_into(gw, db_path, tmp_path / "whole", "openai")
    monkeypatch.setattr(retry_files, "MAX_FILE_REQUESTS", 3)
    split = retry_into(gw, db_path, tmp_path / "split", "openai")
    files = written(tmp_path / "split")
    assert all(len(lines) <= 3 for lines in files.values())
    assert any(name.endswith("__part2.jsonl") for name in files)
    assert written_by_source(tmp_path / "split", "openai") == \
        written_by_source(tmp_path / "whole", "openai")
    assert split.total == whole.total and len(split.files) > len(whole.files)


def test_bodies_keep_their_ugly_text_byte_for_byte(openai_lake: Any, tmp_path: Path) -> None:
    gw, db_path = lake_copy(openai_lake, tmp_path)
    retry_into(gw, db_path, tmp_path / "out", "openai")
    data = b"".join(f.read_bytes() for f in (tmp_path / "out").glob("retry_*.jsonl"))
    for ugly in ("😡".encode(), "\u2028".encode(), b"<div>&nbsp;</div>", b"\\u65e5",
                 b'\\"', b"\\\\", b"\\u0000", b'"body": {'):
        assert ugly in data, ugly
    for lines in written(tmp_path / "out").values():
        for ln in lines:
            assert orjson.loads(ln)[KEY["openai"]]
