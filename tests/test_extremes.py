"""Every view and every read command survives every value the schema allows: databases built
from objects generated from Bifrost's batch schema (int64 extremes, negative counts, control
characters in ids) are read by each view, by `report` in every format and filter, `stuck`,
`sql` in every format, `export parquet` and the notebook, with no traceback, the documented
exit codes and output that parses."""

from __future__ import annotations

import csv
import io
import json
import shutil
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchlake import report_frames as rpt
from batchlake import report_html
from batchlake.api import VIEWS
from batchlake.json_values import jsonable
from batchlake.transforms import flatten_objects
from batchlake.warehouse import Warehouse
from tests.bifrost_objects import gateway_objects
from tests.cli_runner import invoke
from tests.conftest import rows
from tests.notebook_runner import run_notebook

NOW = datetime.now(UTC)
I64_MAX, I64_MIN = 2**63 - 1, -(2**63)


def extreme_objects() -> list[dict[str, Any]]:
    """Hand-made extremes beside the generated ones: what broke the read commands."""
    base = {"status": "in_progress", "created_at": int(NOW.timestamp()) - 2 * 86400,
            "completion_window": "24h"}
    return [
        {**base, "id": "max-counts", "request_counts": {
            "total": I64_MAX, "completed": I64_MAX, "failed": I64_MAX, "pending": I64_MAX},
         "extra_fields": {"latency": I64_MAX, "cache_debug": {
             "cache_hit": True, "input_tokens": I64_MAX, "similarity": 1e308,
             "threshold": -1e308, "hit_type": "semantic"}}},
        {**base, "id": "max-counts-2", "request_counts": {
            "total": I64_MAX, "completed": I64_MAX, "failed": I64_MAX},
         "extra_fields": {"latency": I64_MAX, "cache_debug": {
             "cache_hit": True, "input_tokens": I64_MAX}}},
        {**base, "id": "min-counts", "status": "completed", "request_counts": {
            "total": I64_MIN, "completed": I64_MIN, "failed": I64_MIN}},
        {**base, "id": "min-counts-2", "status": "completed", "request_counts": {
            "total": I64_MIN, "completed": I64_MIN, "failed": 0}},
        {**base, "id": "ctl\x00\x01\x1b[31m\n\t\u202e", "request_counts": {
            "total": 1, "completed": 0, "failed": 0},
         "errors": {"object": "list", "data": [{"code": "\x00", "message": "\x1b[2J"}]},
         "metadata": {"team\n": "\x07"}},
        {**base, "id": "huge-window", "completion_window": "99999999999999999999d",
         "request_counts": {"total": 0, "completed": 0, "failed": 0}},
        {**base, "id": "long-window", "completion_window": "36500d",
         "created_at": 99_999_999_999, "request_counts": {"total": 0, "completed": 0,
                                                          "failed": 0}},
        {**base, "id": "far-future", "created_at": 9223372036854775807,
         "request_counts": {"total": 0, "completed": 0, "failed": 0}},
    ]


def build_db(path: str, objects: list[Any]) -> None:
    with Warehouse(path) as wh:
        for provider in ("gemini", "anthropic"):
            flat = flatten_objects(objects, provider, as_of=NOW)
            wh.load_chunk(flat, run_id=f"run-{provider}", observed_at=NOW)
            # a second sighting, changed, gives the history views rows to read
            flat = flatten_objects([dict(o, output_file_id="changed") for o in objects
                                    if isinstance(o, dict)], provider, as_of=NOW)
            wh.load_chunk(flat, run_id=f"run2-{provider}", observed_at=datetime.now(UTC))


# The report's filters: each example reads the report through one of them (drawn), every
# view and the overdue list; the CLI test below reads each filter on each of its examples.
FILTERS = [(None, None), ("7d", None), (None, "gemini"), ("7d", "gemini")]


def read_everything(path: str, since_text: str | None = None, provider: str | None = None
                    ) -> None:
    con = duckdb.connect(path, read_only=True)
    try:
        for view in VIEWS:
            con.execute(f"SELECT * FROM {view}").fetchall()
        since = rpt.parse_duration(since_text) if since_text else None
        sections = rpt.build(con, since, provider)
        json.dumps(jsonable(sections), default=str)
        report_html.to_html(sections, rpt.status_by_provider(con, since, provider), "t")
        rpt.overdue(con, None, rpt.parse_duration("2h"))
    finally:
        con.close()


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty lake, migrated once: each example starts from a copy (a fresh file's
    migration is a tenth of an example's time, and not what this test reads)."""
    path = tmp_path_factory.mktemp("template") / "empty.duckdb"
    Warehouse(str(path)).close()
    return path


# 25 examples, each a whole lake (two providers, two sightings) read by every view: ~0.75 s
# an example; each run draws new ones (no example database in CI).
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(gateway_objects(), min_size=1, max_size=12), st.sampled_from(FILTERS))
def test_every_view_and_report_section_reads_any_schema_valid_data(
        tmp_path_factory: pytest.TempPathFactory, migrated: Path, objects: list[Any],
        report_filter: tuple[str | None, str | None]) -> None:
    path = tmp_path_factory.mktemp("ext") / "x.duckdb"
    shutil.copyfile(migrated, path)
    build_db(str(path), objects + extreme_objects())
    read_everything(str(path), *report_filter)


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)


def _ok(res: Any, codes: tuple[int, ...] = (0,)) -> str:
    assert "Traceback" not in res.stderr + res.stdout, res.stderr[-3000:]
    assert res.returncode in codes, res.stderr
    return str(res.stdout)


@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(gateway_objects(), min_size=3, max_size=8))
@pytest.mark.slow
def test_every_read_command_survives_extreme_data(tmp_path_factory: pytest.TempPathFactory,
                                                  objects: list[Any]) -> None:
    tmp = tmp_path_factory.mktemp("cli")
    db = str(tmp / "x.duckdb")
    build_db(db, objects + extreme_objects())
    for extra in ([], ["--provider", "gemini"], ["--since", "7d"]):
        json.loads(_ok(invoke("report", "--db", db, "--format", "json", *extra)))
        _ok(invoke("report", "--db", db, "--format", "csv", *extra))
        assert "Summary" in _ok(invoke("report", "--db", db, *extra))
    html_path = tmp / "r.html"
    _ok(invoke("report", "--db", db, "--html", str(html_path)))
    page = _Html()
    page.feed(html_path.read_text(encoding="utf-8"))
    assert "svg" in page.tags and "table" in page.tags
    # stuck: exit 2 when there are stuck batches (the extremes are open and overdue)
    stuck = _ok(invoke("stuck", "--db", db, "--format", "json"), (2,))
    assert json.loads(stuck)
    _ok(invoke("stuck", "--db", db, "--older-than", "2h"), (2,))
    for view in VIEWS:
        q = f"SELECT * FROM {view}"
        json.loads(_ok(invoke("sql", q, "--db", db, "--format", "json")))
        list(csv.reader(io.StringIO(_ok(invoke("sql", q, "--db", db, "--format", "csv")))))
    _ok(invoke("sql", "SELECT * FROM v_daily_summary", "--db", db))
    lake = tmp / "lake"
    _ok(invoke("export", "parquet", str(lake), "--db", db))
    with duckdb.connect() as back:  # neither connection left open on the file
        n = back.execute("SELECT count(*) FROM read_parquet(?, hive_partitioning = true)",
                         [str(lake / "batches" / "**" / "*.parquet")]).fetchall()[0][0]
    assert n == rows(db, "SELECT count(*) FROM batches")[0][0]


@pytest.mark.slow
def test_the_notebook_runs_on_extreme_data(tmp_path: Path) -> None:
    db = str(tmp_path / "x.duckdb")
    build_db(db, extreme_objects())
    run_notebook(db)
