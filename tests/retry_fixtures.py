"""What the retry tests build and check: a synced gateway, what the gateway's own truth says a
retry must offer (computed from its input files and results bodies, not from batchlake), and
the retry files read back."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import batchlake
from batchlake.pipeline import sync
from batchlake.simulator import Plan, SimGateway
from tests.conftest import settings_for

KEY = {"openai": "custom_id", "azure": "custom_id", "anthropic": "custom_id", "gemini": "key",
       "bedrock": "recordId"}
WRITES = ("file_upload", "batch_create")
# a prompt fragment every simulated input holds: it must never reach the database
PROMPT = "ça ne marche pas"


def retry_into(gw: SimGateway, db: str, out: Path, provider: str, **kw: Any
               ) -> batchlake.RetryReport:
    """``batchlake.retry`` of ``provider`` against ``gw`` into ``out``."""
    return batchlake.retry(provider, out=str(out), db=db, base_url=gw.base_url, **kw)


def synced(gw: SimGateway, db: str, **kw: Any) -> None:
    rep = sync(settings_for(gw, db, results_budget_s=0, **kw))
    assert not rep.failed, [r.error for r in rep.failed]


def finished_plans(gw: SimGateway, provider: str) -> list[Plan]:
    """The provider's batches that have ended (what a retry may select)."""
    from batchlake.simulator.population import phase_at

    return [p for p in gw.visible(provider)
            if phase_at(p, gw.now)[0] in ("completed", "expired", "cancelled", "failed")]


def input_lines(gw: SimGateway, plan: Plan) -> list[bytes]:
    """The batch's input file as the gateway serves it, line by line (no line breaks)."""
    data = gw.files.uploads.get((plan.provider, _file_id(plan))) or gw.files.input_of(gw, plan)
    return [ln.rstrip(b"\r") for ln in data.split(b"\n") if ln.strip()]


def _file_id(plan: Plan) -> str:
    from batchlake.simulator.input_files import input_file_id

    return input_file_id(plan)


def succeeded_ids(gw: SimGateway, plan: Plan) -> set[str]:
    """custom_ids with a succeeded line in the batch's results body (the gateway's truth:
    ``result.type`` succeeded, else no error and an integer 2xx status)."""
    body = gw.results(plan.provider, plan.id)
    if body is None:
        return set()
    ok = set()
    for line in json.loads(body)["results"]:
        result, error, response = line.get("result"), line.get("error"), line.get("response")
        status = response.get("status_code") if isinstance(response, dict) else None
        if (result and result.get("type") == "succeeded") or (
                not result and not error and type(status) is int and 200 <= status < 300):
            ok.add(line["custom_id"])
    return ok


def failed_line_ids(gw: SimGateway, plan: Plan) -> list[str]:
    """custom_ids with a result line but none that succeeded, in line order."""
    body = gw.results(plan.provider, plan.id)
    if body is None:
        return []
    ok = succeeded_ids(gw, plan)
    ids = [ln["custom_id"] for ln in json.loads(body)["results"]]
    return [c for c in dict.fromkeys(ids) if c not in ok]


def expected_retries(gw: SimGateway, provider: str, plans: list[Plan] | None = None
                     ) -> dict[tuple[str, str], bytes]:
    """(batch id, custom_id) -> the input line, for every request of the finished batches
    that did not succeed (first line of a custom_id; batches of a chain not told apart)."""
    want: dict[tuple[str, str], bytes] = {}
    for plan in plans if plans is not None else finished_plans(gw, provider):
        ok = succeeded_ids(gw, plan)
        for raw in input_lines(gw, plan):
            cid = orjson.loads(raw)[KEY[provider]]
            if cid not in ok and (plan.id, cid) not in want:
                want[(plan.id, cid)] = raw
    return want


def written(out: Path) -> dict[str, list[bytes]]:
    """Each retry file in ``out`` and its lines."""
    return {f.name: [ln for ln in f.read_bytes().split(b"\n") if ln]
            for f in sorted(out.glob("retry_*.jsonl"))}


def written_by_source(out: Path, provider: str) -> dict[tuple[str, str], bytes]:
    """(source batch, custom_id) -> line, from the manifest and the files."""
    manifest = orjson.loads((out / "retry-manifest.json").read_bytes())
    got: dict[tuple[str, str], bytes] = {}
    for f in manifest["files"]:
        lines = [ln for ln in (out / f["name"]).read_bytes().split(b"\n") if ln]
        ids = [orjson.loads(ln)[KEY[provider]] for ln in lines]
        assert len(ids) == len(set(ids)), f"a custom_id twice in {f['name']}"
        assert len(lines) == f["requests"]
        for cid, ln in zip(ids, lines, strict=True):
            got[(f["source_batch_id"], cid)] = ln
    return got


def writes(gw: SimGateway) -> int:
    """Requests that would write to the gateway (uploads, batch creations)."""
    return sum(v for (endpoint, _), v in gw.requests.items() if endpoint in WRITES)


def content_requests(gw: SimGateway, provider: str | None = None) -> int:
    return sum(v for (endpoint, p), v in gw.requests.items()
               if endpoint == "file_content" and provider in (None, p))


def prompt_in_database(db: str) -> list[str]:
    """Columns (table.column) any of whose text holds a prompt fragment of the inputs."""
    import duckdb

    found = []
    con = duckdb.connect(db, read_only=True)
    try:
        cols = con.execute("SELECT table_name, column_name FROM information_schema.columns "
                           "JOIN information_schema.tables USING (table_name) WHERE "
                           "table_type = 'BASE TABLE' AND data_type IN ('VARCHAR', 'JSON') "
                           "ORDER BY ALL").fetchall()
        for table, c in cols:
            hit = con.execute(f'SELECT count(*) FROM "{table}" WHERE CAST("{c}" AS VARCHAR) '
                              "LIKE ?", [f"%{PROMPT}%"]).fetchall()
            if hit[0][0]:
                found.append(f"{table}.{c}")
    finally:
        con.close()
    return found


def synced_lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimGateway, Path]]:
    """One OpenAI gateway (60 batches) synced once (tests/conftest.py's ``openai_lake``, a
    module's): (gateway, database file). Tests copy the file (``lake_copy``)."""
    gw = SimGateway(60, seed=5, providers=("openai",))
    gw.start()
    try:
        db = tmp_path_factory.mktemp("lake") / "lake.duckdb"
        synced(gw, str(db))
        yield gw, db
    finally:
        gw.stop()


def lake_copy(lake: tuple[SimGateway, Path], tmp_path: Path) -> tuple[SimGateway, str]:
    """The module's synced lake for one test: its own database file, the gateway's faults,
    counters and hand-set files cleared."""
    gw, db = lake
    gw.faults = []
    gw.requests.clear()
    gw.files.uploads.clear()
    mine = tmp_path / "lake.duckdb"
    shutil.copy(db, mine)
    return gw, str(mine)
