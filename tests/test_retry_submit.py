"""batchlake retry --submit over real HTTP: each file uploaded and made a batch (same endpoint,
completion window, metadata plus the lineage keys), recorded; the next sync links each new
batch to its source (v_retry_lineage); a later retry offers only what failed again, from its
latest attempt, never what succeeded; the same failures are not submitted twice without
--force; a create that got no answer stays in doubt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from batchlake.common import BatchlakeError, ConfigError
from batchlake.simulator import Fault, input_body
from tests.conftest import rows
from tests.locks import hold_lock, release
from tests.retry_fixtures import (
    expected_retries,
    finished_plans,
    retry_into,
    succeeded_ids,
    synced,
    writes,
    written_by_source,
)

LATER = 3 * 3600  # a created batch runs about 32 simulated minutes


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHLAKE_BACKOFF_BASE_S", "0.01")


def test_submitted_batches_link_to_their_source_and_only_new_failures_come_back(
        make_gateway: Any, db_path: str, tmp_path: Path) -> None:
    gw = make_gateway(30, seed=5, providers=("openai",))
    synced(gw, db_path)
    seen = {p.id for p in finished_plans(gw, "openai")}
    said: list[str] = []
    rep = retry_into(gw, db_path, tmp_path / "r1", "openai", submit=True, on_event=said.append)
    made = {p.id: p for p in gw.files.created}
    assert rep.submitted and len(made) == len(rep.files) > 0
    assert writes(gw) == 2 * len(rep.files)  # one upload and one create a file, no more
    for f in rep.files:
        new = made[f.retry_batch_id]
        assert new.metadata["batchlake_retry_of"] == f.source_batch_id
        assert new.metadata["batchlake_retry_run"] == rep.run_id
        assert new.endpoint == f.endpoint and new.total == f.requests
        assert any(f.retry_batch_id in s and f.name in s for s in said)
    assert rows(db_path, "SELECT DISTINCT submit_state FROM retry_batches") == [("submitted",)]
    # the same failures again, before their retry batches finished: refused in one line
    with pytest.raises(BatchlakeError, match=r"submitted already.*--force"):
        retry_into(gw, db_path, tmp_path / "again", "openai", submit=True)
    assert writes(gw) == 2 * len(rep.files)
    gw.advance(LATER)
    synced(gw, db_path)
    lineage = rows(db_path, "SELECT retry_batch_id, source_batch_id, status, run_id "
                            "FROM v_retry_lineage ORDER BY 1")
    assert lineage == sorted((f.retry_batch_id, f.source_batch_id, "completed", rep.run_id)
                             for f in rep.files)
    # the next retry: what failed in the retry batches, from them, nothing that succeeded;
    # and the failures of batches that finished since
    second = retry_into(gw, db_path, tmp_path / "r2", "openai")
    newly = [p for p in finished_plans(gw, "openai") if p.id not in seen and p.id not in made]
    seen |= {p.id for p in newly}
    want = expected_retries(gw, "openai", [*made.values(), *newly])
    got = written_by_source(tmp_path / "r2", "openai")
    assert want and set(got) == set(want)
    ok = {(b, c) for b, p in made.items() for c in succeeded_ids(gw, p)}
    assert not set(got) & ok
    assert set(second.requests["source_batch_id"]) <= set(made) | {p.id for p in newly}
    # and a chain: the second round submitted, finished, synced, retried again
    retry_into(gw, db_path, tmp_path / "r2", "openai", submit=True)
    gw.advance(LATER)
    synced(gw, db_path)
    depth = rows(db_path, "SELECT max(depth), count(DISTINCT root_batch_id) FROM "
                          "v_retry_lineage")[0]
    assert depth[0] == 2
    third = retry_into(gw, db_path, tmp_path / "r3", "openai")
    newest = [p for p in gw.files.created if p.id not in made]
    newly = [p for p in finished_plans(gw, "openai") if p.id not in seen and p.id not in made
             and p not in newest]
    assert set(written_by_source(tmp_path / "r3", "openai")) == \
        set(expected_retries(gw, "openai", [*newest, *newly]))
    assert third.total < second.total


def test_force_submits_the_same_failures_once_more(make_gateway: Any, db_path: str,
                                                   tmp_path: Path) -> None:
    gw = make_gateway(30, seed=5, providers=("openai",))
    synced(gw, db_path)
    first = retry_into(gw, db_path, tmp_path / "a", "openai", submit=True)
    quiet = retry_into(gw, db_path, tmp_path / "b", "openai")
    assert quiet.total == 0 and any("not offered again" in n for n in quiet.notes)
    forced = retry_into(gw, db_path, tmp_path / "c", "openai", submit=True, force=True)
    assert forced.total == first.total
    assert {f.source_batch_id for f in forced.files} == {f.retry_batch_id for f in first.files}


def test_anthropic_submits_inline_and_its_lineage_comes_from_the_record(
        make_gateway: Any, db_path: str, tmp_path: Path) -> None:
    gw = make_gateway(80, seed=5, providers=("anthropic",))
    synced(gw, db_path)
    plan = next(p for p in finished_plans(gw, "anthropic")
                if expected_retries(gw, "anthropic", [p]))
    mine = tmp_path / "sent.jsonl"
    mine.write_bytes(input_body(plan, gw.results_max_lines))
    rep = retry_into(gw, db_path, tmp_path / "out", "anthropic", batch=plan.id, inputs=[str(mine)],
                 submit=True)
    (new,) = gw.files.created
    assert new.custom_ids == tuple(c for _, c in written_by_source(tmp_path / "out",
                                                                   "anthropic"))
    assert not new.metadata  # Anthropic batches carry none
    assert not any(k == ("file_upload", "anthropic") for k in gw.requests)
    gw.advance(LATER)
    synced(gw, db_path)
    assert rows(db_path, "SELECT retry_batch_id, source_batch_id FROM v_retry_lineage") == [
        (rep.files[0].retry_batch_id, plan.id)]


def test_bedrock_submits_to_the_sources_bucket_with_an_output_location(
        make_gateway: Any, db_path: str, tmp_path: Path) -> None:
    gw = make_gateway(30, seed=5, providers=("bedrock",))
    synced(gw, db_path)
    with pytest.raises(ConfigError, match="--output-s3-uri"):
        retry_into(gw, db_path, tmp_path / "out", "bedrock", submit=True)
    assert writes(gw) == 0
    rep = retry_into(gw, db_path, tmp_path / "out", "bedrock", submit=True,
                 output_s3_uri="s3://out-bucket/retries/", role_arn="arn:aws:iam::1:role/b")
    uploads = [k for (p, k) in gw.files.uploads if p == "bedrock"]
    assert uploads and all(k.startswith("s3://batch-inputs/batchlake-retry/") for k in uploads)
    for f in rep.files:
        new = next(p for p in gw.files.created if p.id == f.retry_batch_id)
        assert new.model == f.model  # one model a job: the source's


def test_gemini_submits_from_an_uploaded_file(make_gateway: Any, db_path: str,
                                              tmp_path: Path) -> None:
    gw = make_gateway(30, seed=5, providers=("gemini",), gemini_file_content=True)
    synced(gw, db_path)
    rep = retry_into(gw, db_path, tmp_path / "out", "gemini", submit=True)
    for f in rep.files:
        new = next(p for p in gw.files.created if p.id == f.retry_batch_id)
        assert new.model == (f.model or "").rsplit("/", 1)[-1]
        lines = (tmp_path / "out" / f.name).read_bytes().split(b"\n")
        assert all(list(orjson.loads(ln)) == ["key", "request"] for ln in lines if ln)


def test_a_throttled_create_and_a_failed_upload_are_asked_again(
        make_gateway: Any, db_path: str, tmp_path: Path) -> None:
    gw = make_gateway(30, seed=5, providers=("openai",))
    synced(gw, db_path)
    gw.faults = [Fault("status", endpoint="batch_create", status=429, retry_after="0"),
                 Fault("status", endpoint="file_upload", status=503)]
    rep = retry_into(gw, db_path, tmp_path / "a", "openai", submit=True)
    calls = {e: sum(v for (e_, _), v in gw.requests.items() if e_ == e)
             for e in ("file_upload", "batch_create")}
    # a 429 made no batch and a failed upload no batch either: each asked once more
    assert calls == {"file_upload": len(rep.files) + 1, "batch_create": len(rep.files) + 1}
    assert len(gw.files.created) == len(rep.files)


def test_a_create_without_an_answer_stays_in_doubt_and_a_refused_one_does_not(
        make_gateway: Any, db_path: str, tmp_path: Path) -> None:
    gw = make_gateway(30, seed=5, providers=("openai",))
    synced(gw, db_path)
    gw.faults = [Fault("status", endpoint="batch_create", status=400)]
    with pytest.raises(BatchlakeError, match=r"submitting .* failed: .*400") as e:
        retry_into(gw, db_path, tmp_path / "a", "openai", submit=True)
    assert "may have made" not in str(e.value)
    assert ("failed",) in rows(db_path, "SELECT submit_state FROM retry_batches")
    gw.faults = [Fault("status", endpoint="batch_create", status=502, times=-1)]
    with pytest.raises(BatchlakeError, match="may have made the batch"):
        retry_into(gw, db_path, tmp_path / "b", "openai", submit=True)
    creates = sum(v for (e_, _), v in gw.requests.items() if e_ == "batch_create")
    assert creates == 2  # a 5xx on a create is never asked again: it may have made one
    assert ("uploading",) in rows(db_path, "SELECT submit_state FROM retry_batches")
    gw.faults = []
    later = retry_into(gw, db_path, tmp_path / "c", "openai")
    doubt = rows(db_path, "SELECT requests FROM retry_batches WHERE submit_state = "
                          "'uploading'")[0][0]
    first = rows(db_path, "SELECT count(*) FROM retry_requests r JOIN retry_batches f USING "
                          "(run_id, file_name) WHERE f.submit_state = 'uploading'")[0][0]
    assert first == doubt
    assert later.total > 0 and any("not offered again" in n for n in later.notes)


def test_the_file_is_free_between_a_submits_steps(make_gateway: Any, db_path: str,
                                                  tmp_path: Path) -> None:
    """A submit records each step in the file and lets it go in between (a sync from another
    process may run while an upload takes its time), and leaves no WAL behind."""
    gw = make_gateway(30, seed=5, providers=("openai",))
    synced(gw, db_path)
    held: list[str] = []

    def writer_elsewhere(said: str) -> None:
        if said.startswith("uploaded") and not held:  # between two of the submit's writes
            release(hold_lock(db_path))  # returns once another process held the write lock
            held.append(said)

    rep = retry_into(gw, db_path, tmp_path / "out", "openai", submit=True,
                     on_event=writer_elsewhere)
    assert len(held) == 1 and rep.submitted
    assert rows(db_path, "SELECT count(*) FROM retry_batches WHERE submit_state = "
                         "'submitted'") == [(len(rep.files),)]
    assert not Path(db_path + ".wal").exists()
