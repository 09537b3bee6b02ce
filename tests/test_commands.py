"""Every command has a Python twin of the same name and parameters, returning typed values; the
CLI prints what a person reads on a 100-column terminal, and JSON with every figure."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import typer

import batchlake
from batchlake.cli import app
from batchlake.simulator import SimGateway
from tests.cli_runner import invoke
from tests.conftest import FAST_RETRY, rows
from tests.results_fixtures import NOW, body, chat, finished

# CLI command -> its Python twin; options that only shape the output are the CLI's own.
TWINS = {"sync": batchlake.sync, "fetch": batchlake.fetch, "results": batchlake.results,
         "report": batchlake.report, "stuck": batchlake.stuck, "reprice": batchlake.reprice,
         "parquet": batchlake.export_parquet, "sql": batchlake.query,
         "config": batchlake.config, "schema": batchlake.schema}
RENDERING = {"fmt", "quiet", "html", "status"}


def _cli_params(name: str) -> set[str]:
    group = typer.main.get_group(app)
    cmd = group.commands.get(name) or group.commands["export"].commands[name]  # type: ignore[attr-defined]
    return {p.name for p in cmd.params if p.name} - RENDERING


@pytest.mark.parametrize("command", sorted(TWINS))
def test_each_command_has_a_python_twin_with_its_parameters(command: str) -> None:
    params = set(inspect.signature(TWINS[command]).parameters)
    # the twin takes every option the command takes, and the global --config as config=
    assert _cli_params(command) <= params, _cli_params(command) - params
    extra = params - _cli_params(command) - {"config", "settings", "on_progress", "on_wait",
                                             "clock"}
    assert not extra, f"{command}'s twin takes options the CLI does not: {extra}"


def test_the_twins_sync_report_and_read_as_in_a_notebook(gateway: SimGateway, tmp_path: Path
                                                          ) -> None:
    db = str(tmp_path / "lake.duckdb")
    run = batchlake.sync(base_url=gateway.base_url, providers=["openai", "gemini"], db=db,
                         timeout=FAST_RETRY["timeout_s"])
    assert isinstance(run, batchlake.SyncReport)
    assert [r.provider for r in run.results] == ["openai", "gemini"]
    assert sum(r.counts.inserted for r in run.results) == \
        len(gateway.truth("openai")) + len(gateway.truth("gemini"))
    rep = batchlake.report(db=db, provider="gemini")
    assert isinstance(rep, batchlake.Report)
    assert rep.sections["summary"].get_column("provider").to_list() == ["gemini"]
    assert set(rep.to_json()) == set(rep.sections) and "<svg" in rep.to_html()
    stuck = batchlake.stuck(db=db)
    assert isinstance(stuck, pl.DataFrame)
    assert stuck.height == rows(db, "SELECT count(*) FROM v_overdue")[0][0]
    bid = gateway.visible("openai")[0].id
    row = batchlake.fetch(bid, "openai", base_url=gateway.base_url, db=db)
    assert row["batch_id"] == bid and row["provider"] == "openai"
    repriced = batchlake.reprice(db=db)
    assert repriced.lines == rows(db, "SELECT count(*) FROM batch_results")[0][0] > 0
    written = batchlake.export_parquet(str(tmp_path / "lake"), db=db)
    assert written > 0 and any((tmp_path / "lake").rglob("*.parquet"))
    assert batchlake.query("SELECT count(*) AS n FROM batches", db=db).item() == \
        len(gateway.truth("openai")) + len(gateway.truth("gemini"))
    status = batchlake.results_status(db=db)
    assert set(status.by_provider.get_column("provider")) == {"openai", "gemini"}


def test_settings_and_options_are_one_or_the_other(gateway: SimGateway, db_path: str) -> None:
    with pytest.raises(batchlake.ConfigError, match="either settings or options"):
        batchlake.sync(batchlake.Settings(base_url=gateway.base_url, db_path=db_path),
                       db=db_path)


def test_sync_prints_a_line_per_provider_that_fits_100_columns(gateway: SimGateway,
                                                                db_path: str) -> None:
    res = invoke("sync", "--base-url", gateway.base_url, "--db", db_path)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    header, *body_lines = lines
    assert header.split() == ["provider", "status", "listed", "new", "changed", "rejected",
                              "results", "lines", "backlog", "seconds"]
    table = [header, *body_lines[:len(gateway.providers)]]
    assert all(len(line) <= 100 for line in table), table
    for provider, line in zip(gateway.providers, body_lines, strict=False):
        cells = line.split()
        assert cells[0] == provider and cells[1] == "ok"
        assert int(cells[2].replace(",", "")) == len(gateway.truth(provider))
    run_line = lines[-1]
    assert run_line.startswith("run ") and run_line.endswith(" s") and len(run_line) <= 100
    assert f"{len(gateway.providers)}/{len(gateway.providers)} providers ok" in run_line


def test_sync_json_gives_every_figure(gateway: SimGateway, db_path: str) -> None:
    res = invoke("sync", "--base-url", gateway.base_url, "--db", db_path, "--format", "json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    stored = {p: dict(zip(("fetched", "inserted", "result_lines"), r, strict=True))
              for p, *r in rows(db_path, "SELECT provider, fetched, inserted, result_lines "
                                         "FROM sync_runs")}
    assert {p["provider"] for p in data["providers"]} == set(gateway.providers)
    for p in data["providers"]:
        assert {"pages", "fetched", "refetched_by_id", "inserted", "updated", "unchanged",
                "rejected", "snapshots", "results_batches", "result_lines", "results_failed",
                "results_backlog", "deferred", "plan", "seconds", "error",
                "warnings"} <= set(p)
        assert {k: p[k] for k in ("fetched", "inserted", "result_lines")} == \
            stored[p["provider"]]
    assert data["run_id"] == rows(db_path, "SELECT DISTINCT run_id FROM sync_runs")[0][0]


def test_results_status_groups_failures_by_reason(make_gateway: Any, db_path: str) -> None:
    gw = make_gateway(0, providers=("anthropic",), now=NOW)
    old = [f"msg_old{i}" for i in range(6)]
    for bid, age in [("msg_recent", 3)] + [(b, 40 + i) for i, b in enumerate(old)]:
        gw.add_plan(finished("anthropic", bid, age, model="claude-sonnet-4"))
        gw.results_bodies[("anthropic", bid)] = body(bid, [chat("x", "claude", 5, 0, 5)])
    assert invoke("sync", "--base-url", gw.base_url, "--db", db_path,
                  "--providers", "anthropic", "-q").returncode == 0
    res = invoke("results", "--status", "--db", db_path, "--format", "json")
    data = json.loads(res.stdout)
    (group,) = data["failures"]
    assert group["batches"] == 6 and group["state"] == "unavailable"
    assert group["example_batch_id"] in old and "29 days" in group["reason"]
    assert sorted(b["batch_id"] for b in data["batches"]) == sorted(old)
    (prov,) = data["by_provider"]
    assert prov["loaded"] == 1 and prov["unavailable"] == 6
    table = invoke("results", "--status", "--db", db_path)
    assert table.stdout.count("msg_old") == 1  # one example, not a row per batch


def test_bedrock_requests_come_from_its_result_lines(make_gateway: Any, db_path: str) -> None:
    gw = make_gateway(40, seed=5, providers=("bedrock", "openai"))
    batchlake.sync(base_url=gw.base_url, db=db_path, providers=["bedrock", "openai"])
    summary = {r["provider"]: r for r in
               batchlake.report(db=db_path).sections["summary"].to_dicts()}
    lines = dict(rows(db_path, "SELECT provider, count(*) FROM batch_results GROUP BY 1"))
    assert rows(db_path, "SELECT max(request_total) FROM batches WHERE provider = 'bedrock'"
                ) == [(0,)]
    assert summary["bedrock"]["requests"] == lines["bedrock"] > 0
    assert summary["bedrock"]["requests_from"] == "result lines"
    assert summary["bedrock"]["success_rate"] is not None
    assert summary["openai"]["requests_from"] == "batch objects"
