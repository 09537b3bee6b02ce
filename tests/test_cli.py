"""The CLI on real files: commands, formats, and every expected mistake as one line with a
non-zero exit; in this process (tests/cli_runner.py), and end to end as a real process where
the process itself is what is tested (the demo, a terminal, the gateway server, TMPDIR)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from batchlake.pipeline import sync
from batchlake.simulator import Fault, SimGateway
from tests.cli_runner import CliResult, invoke
from tests.conftest import ROOT, free_port, rows, run_cli, settings_for

COMMANDS = ["sync", "fetch", "results", "reprice", "config", "sql", "gateway", "demo", "report",
            "stuck", "schema", "serve", "export"]


def one_line_error(res: subprocess.CompletedProcess[str] | CliResult, *needles: str) -> None:
    assert res.returncode != 0
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command: str) -> None:
    res = invoke(command, "--help")
    assert res.returncode == 0
    assert "Example" in res.stdout or command == "export"


def test_demo_builds_the_database_and_prints_a_report(tmp_path: Path) -> None:
    db = str(tmp_path / "demo.duckdb")
    res = run_cli("demo", "--db", db, "--batches", "500")
    assert res.returncode == 0, res.stderr
    for section in ("Summary", "Durations", "Top Errors", "Cache", "Overdue"):
        assert section in res.stdout
    assert rows(db, "SELECT count(*) FROM batches")[0][0] >= 450
    assert rows(db, "SELECT count(DISTINCT run_id) FROM sync_runs")[0][0] == 2
    # a fresh demo database again (in this process: the first run was the real process)
    again = invoke("demo", "--db", db, "--batches", "100")
    assert again.returncode == 0, again.stderr
    assert rows(db, "SELECT count(DISTINCT run_id) FROM sync_runs")[0][0] == 2


def test_demo_never_overwrites_a_database_with_real_syncs(gateway: SimGateway,
                                                           db_path: str) -> None:
    sync(settings_for(gateway, db_path))
    before = rows(db_path, "SELECT count(*) FROM batches")
    one_line_error(invoke("demo", "--db", db_path), "holds real syncs")
    assert rows(db_path, "SELECT count(*) FROM batches") == before


def test_sync_then_sql_in_each_format(gateway: SimGateway, db_path: str) -> None:
    res = run_cli("sync", "--base-url", gateway.base_url, "--db", db_path)
    assert res.returncode == 0, res.stderr
    assert "openai" in res.stdout and "changed" in res.stdout
    q = "SELECT provider, count(*) AS n FROM batches GROUP BY 1 ORDER BY 1"
    want = {p: len(gateway.truth(p)) for p in gateway.providers}
    as_json = json.loads(invoke("sql", q, "--db", db_path, "--format", "json").stdout)
    assert {r["provider"]: r["n"] for r in as_json} == want
    as_csv = list(csv.DictReader(io.StringIO(
        invoke("sql", q, "--db", db_path, "--format", "csv").stdout)))
    assert {r["provider"]: int(r["n"]) for r in as_csv} == want
    table = invoke("sql", q, "--db", db_path).stdout
    assert all(p in table for p in want)


def test_second_sync_reports_nothing_changed(gateway: SimGateway, db_path: str) -> None:
    invoke("sync", "--base-url", gateway.base_url, "--db", db_path, "-q")
    res = invoke("sync", "--base-url", gateway.base_url, "--db", db_path, "--full-refresh",
                  "-q")
    assert res.returncode == 0
    r = rows(db_path, "SELECT sum(inserted), sum(updated) FROM sync_runs WHERE mode = 'full'")
    assert r == [(0, 0)]


def test_fetch_prints_and_stores_one_batch(gateway: SimGateway, db_path: str) -> None:
    bid = gateway.visible("gemini")[0].id
    res = invoke("fetch", bid, "--provider", "gemini", "--db", db_path,
                  "--base-url", gateway.base_url)
    assert res.returncode == 0, res.stderr
    assert bid in res.stdout and "status_norm" in res.stdout
    assert rows(db_path, "SELECT batch_id, request_type FROM batches") == [
        (bid, "batch_retrieve")]


@pytest.mark.parametrize(("args", "needles"), [
    (["sync", "--base-url", "http://127.0.0.1:9"], ["cannot reach the gateway"]),
    (["sync", "--base-url", "localhost:8080"], ["not an http(s) URL"]),
    (["sync", "--providers", "open ai"], ["provider name"]),
    (["sql", "SELECT 1", "--db", "/nonexistent/x.duckdb"], ["no database at"]),
    (["sql", "SELEC nonsense"], ["query failed"]),
    (["report", "--since", "a week"], ["duration"]),
    (["serve"], ["prefect server start"]),
    (["sync", "--db", "md:lake"], ["MOTHERDUCK_TOKEN"]),
    # usage mistakes: typer's own click exceptions, one line naming --help
    (["sync", "--timeout", "abc"], ["--timeout", "batchlake sync --help"]),
    (["fetch"], ["Missing argument", "batchlake fetch --help"]),
    (["gateway", "--port", "abc"], ["--port", "batchlake gateway --help"]),
    (["nosuchcommand"], ["No such command", "batchlake --help"]),
])
def test_expected_mistakes_are_one_clear_line(gateway: SimGateway, db_path: str,
                                              args: list[str], needles: list[str]) -> None:
    if args[0] in ("sync",) and "--base-url" not in args:
        args = [*args, "--base-url", gateway.base_url]
    if args[0] in ("sql", "report") and "--db" not in args:
        sync(settings_for(gateway, db_path))
        args = [*args, "--db", db_path]
    if args[0] == "sync" and "--db" not in args:
        args = [*args, "--db", db_path]
    one_line_error(invoke(*args), *needles)


def test_wrong_key_is_one_line_and_never_echoed(make_gateway: Any, db_path: str) -> None:
    gw = make_gateway(20, api_key="sk-bf-right")
    res = invoke("sync", "--base-url", gw.base_url, "--db", db_path,
                  env={"BIFROST_API_KEY": "sk-bf-wrong-canary"})
    one_line_error(res, "refused the credentials", "401")
    assert "sk-bf-wrong-canary" not in res.stderr + res.stdout


def test_unwritable_db_path(gateway: SimGateway, tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):  # root ignores permissions: use a path under a file
            target = str(tmp_path / "afile" / "x.duckdb")
            (tmp_path / "afile").write_text("")
        else:
            target = str(ro / "x.duckdb")
        res = invoke("sync", "--base-url", gateway.base_url, "--db", target)
        one_line_error(res, "writable")
    finally:
        ro.chmod(0o700)


def test_db_path_that_is_a_directory(gateway: SimGateway, tmp_path: Path) -> None:
    one_line_error(invoke("sync", "--base-url", gateway.base_url, "--db", str(tmp_path)),
                   "is a directory")


def test_strict_and_all_failed_exit_codes(gateway: SimGateway, db_path: str) -> None:
    gateway.faults = [Fault("status", provider="gemini", status=400, times=-1)]
    base = ["sync", "--base-url", gateway.base_url, "--db", db_path, "-q"]
    assert invoke(*base).returncode == 0
    assert invoke(*base, "--strict").returncode == 1
    res = invoke("sync", "--base-url", gateway.base_url, "--db", db_path, "--providers",
                  "gemini")
    assert res.returncode == 1 and "gemini failed" in res.stderr


def test_report_json_and_html(gateway: SimGateway, db_path: str, tmp_path: Path) -> None:
    sync(settings_for(gateway, db_path))
    res = invoke("report", "--db", db_path, "--format", "json")
    data = json.loads(res.stdout)
    assert set(data) == {"summary", "durations", "costs", "cost_reconcile", "request_errors",
                         "unpriced", "results_backlog",
                         "top_errors", "cache", "overdue"}
    total = sum(len(gateway.truth(p)) for p in gateway.providers)
    assert sum(r["batches"] for r in data["summary"]) == total
    # the cost section counts every stored result line once, as integers in JSON
    assert sum(r["requests"] for r in data["costs"]) == \
        rows(db_path, "SELECT count(*) FROM batch_results")[0][0] > 0
    assert data["request_errors"] and all(isinstance(r["requests"], int)
                                          for r in data["request_errors"])
    res = invoke("report", "--db", db_path, "--provider", "openai", "--format", "json")
    assert [r["provider"] for r in json.loads(res.stdout)["summary"]] == ["openai"]
    page = tmp_path / "report.html"
    res = invoke("report", "--db", db_path, "--html", str(page))
    assert res.returncode == 0

    class Collect(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.h2: list[str] = []
            self.tags: list[str] = []
            self._in_h2 = False

        def handle_starttag(self, tag: str, attrs: Any) -> None:
            self.tags.append(tag)
            self._in_h2 = tag == "h2"

        def handle_data(self, data: str) -> None:
            if self._in_h2:
                self.h2.append(data)
                self._in_h2 = False

    p = Collect()
    text = page.read_text()
    p.feed(text)
    assert "Summary" in p.h2 and "Overdue" in p.h2 and "svg" in p.tags
    assert "<script" not in text and "http://" not in text.replace("http://www.w3.org", "")
    assert text.count("<rect") > len(gateway.providers)


def test_stuck_exits_2_when_batches_are_overdue(gateway: SimGateway, db_path: str) -> None:
    sync(settings_for(gateway, db_path))
    overdue = rows(db_path, "SELECT count(*) FROM v_overdue")[0][0]
    assert overdue > 0
    res = invoke("stuck", "--db", db_path, "--format", "json")
    assert res.returncode == 2
    assert len(json.loads(res.stdout)) == overdue
    res = invoke("stuck", "--db", db_path, "--provider", "nobody")
    assert res.returncode == 0 and "no stuck batches" in res.stderr


def test_schema_docs_are_generated_and_current() -> None:
    res = invoke("schema")
    assert res.returncode == 0
    assert (ROOT / "docs" / "schema.md").read_text() == res.stdout


def test_gateway_command_serves_until_terminated() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "batchlake", "gateway", "--port", str(port),
                             "--batches", "50"], cwd=ROOT, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/v1/batches",
                              params={"provider": "openai"})
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert r.status_code == 200 and r.json()["data"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


@pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux `script` for a TTY")
def test_progress_bar_on_a_terminal_only(gateway: SimGateway, tmp_path: Path) -> None:
    db = str(tmp_path / "tty.duckdb")
    cmd = f"{sys.executable} -m batchlake sync --base-url {gateway.base_url} --db {db} " \
          "--providers openai"
    # stdin from /dev/null: with stdin closed (as CI may run us) `script` prints nothing.
    tty = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True,
                         cwd=ROOT, timeout=120, env={**os.environ, "COLUMNS": "120"},
                         stdin=subprocess.DEVNULL)
    assert tty.returncode == 0, tty.stdout
    progress = re.compile(r"openai\s.*\d+ pages, [\d,]+ objects")
    assert progress.search(tty.stdout), tty.stdout[-2000:]
    piped = invoke("sync", "--base-url", gateway.base_url, "--db", db, "--providers", "openai")
    assert piped.returncode == 0
    assert not progress.search(piped.stdout + piped.stderr)


def test_a_memory_cap_that_is_too_small_or_unreadable_is_one_line(gateway: Any, db_path: str
                                                                   ) -> None:
    res = invoke("sync", "--base-url", gateway.base_url, "--db", db_path,
                  env={"BATCHLAKE_DUCKDB_MEMORY": "4MB"})
    one_line_error(res, "BATCHLAKE_DUCKDB_MEMORY", "4MB")
    res = invoke("sync", "--base-url", gateway.base_url, "--db", db_path,
                  env={"BATCHLAKE_DUCKDB_MEMORY": "lots"})
    one_line_error(res, "BATCHLAKE_DUCKDB_MEMORY='lots' is not a memory size")


def test_staged_parts_do_not_outlive_the_sync(gateway: Any, tmp_path: Path) -> None:
    """Flattened parts wait for their load transaction as Parquet files in the temp folder;
    each goes when its transaction commits, the folder when the sync ends."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    res = run_cli("sync", "--base-url", gateway.base_url, "--db", str(tmp_path / "s.duckdb"),
                  "--quiet", "--chunk-size", "40", env={"TMPDIR": str(scratch)})
    assert res.returncode == 0, res.stderr
    assert rows(str(tmp_path / "s.duckdb"), "SELECT count(*) FROM batches")[0][0] > 40
    assert list(scratch.iterdir()) == []
