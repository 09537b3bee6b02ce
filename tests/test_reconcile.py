"""`batchlake reconcile` over HTTP: each batch's cost beside the one the simulated gateway's
logs API recorded, every status, the reasons, what a second run asks (nothing, unless
batchlake's side changed or a missing cost's backoff passed), credentials, a gateway without
the logs API, the CLI (in-process and a real process) and the report."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
import typer

import batchlake
from batchlake.cli import app
from batchlake.simulator import Fault, SimGateway, logs_book
from tests.cli_runner import invoke
from tests.conftest import FAST_RETRY, ROOT, rows, run_cli
from tests.reconcile_fixtures import STATUSES, logs_requests, reconcile_gateway, write_prices

PROVIDERS = "openai,anthropic"
SECRET = "adm1n-canary-7f3e"


def _synced(make_gateway: Any, tmp_path: Path, **kw: Any) -> tuple[SimGateway, str]:
    gw = reconcile_gateway(make_gateway, **kw)
    db = str(tmp_path / "lake.duckdb")
    rep = batchlake.sync(base_url=gw.base_url, providers=PROVIDERS, db=db,
                         prices=write_prices(tmp_path), results_budget=0,
                         timeout=FAST_RETRY["timeout_s"])
    assert not rep.failed and sum(r.results_batches for r in rep.results) == len(STATUSES)
    assert logs_requests(gw) == 0  # a sync never asks the logs API
    return gw, db


def _reconcile(gw: SimGateway, db: str, **kw: Any) -> batchlake.Reconciled:
    return batchlake.reconcile(base_url=gw.base_url, providers=PROVIDERS, db=db, since=None,
                               **kw)


def _by_batch(rep: batchlake.Reconciled) -> dict[str, dict[str, Any]]:
    return {r["batch_id"]: r for r in rep.records.to_dicts()}


def test_each_status_over_http_and_a_second_run_asks_nothing(make_gateway: Any,
                                                              tmp_path: Path) -> None:
    gw, db = _synced(make_gateway, tmp_path)
    rep = _reconcile(gw, db)
    got = _by_batch(rep)
    assert {b: r["status"] for b, r in got.items()} == STATUSES
    assert rep.warnings == [] and rep.logs_api is True and rep.asked == len(STATUSES)
    # an honest row matches to the last digit: both sides price the same tokens alike
    assert abs(got["b-match"]["difference"]) < 1e-12
    assert got["b-double"]["gateway_cost"] == pytest.approx(2 * got["b-double"]
                                                            ["batchlake_cost"])
    assert got["b-double"]["reason"].startswith("billed 2 times")
    assert got["b-rate"]["reason"].startswith("rates: gpt-4o-mini-2024-07-18")
    assert "from file gateway-prices.csv" in got["b-rate"]["reason"]
    assert "leave out the 160,000 cache tokens" in got["m-cache"]["reason"]
    assert got["b-null"]["gateway_cost"] is None and "NULL" in got["b-null"]["reason"]
    assert "acme-private-1" in got["b-mine"]["reason"]
    # the older build's id is found in the list; echo rows never count, even alone
    assert got["b-legacy"]["found_by"] == "list" and got["b-match"]["found_by"] == "id"
    stored = dict((b, (by, echoes)) for b, by, echoes in rows(
        db, "SELECT batch_id, found_by, echo_rows FROM gateway_batch_costs"))
    assert stored["b-missing"] == (None, 2) and stored["b-legacy"] == ("list", 1)
    assert "2 echo rows of later /results fetches passed over" in got["b-missing"]["reason"]
    assert len(stored) == len(STATUSES)  # one row per batch
    # a probe, one request by id per batch, one listing for the two not found by id
    assert rep.requests == logs_requests(gw) == 1 + len(STATUSES) + 1
    again = _reconcile(gw, db)
    assert logs_requests(gw) == rep.requests and again.requests == again.asked == 0
    assert again.not_due == len(STATUSES) and again.counts() == rep.counts()
    assert again.records.to_dicts() == rep.records.to_dicts()


def test_a_changed_side_or_a_backfill_is_checked_again_and_nothing_else(
        make_gateway: Any, tmp_path: Path) -> None:
    gw, db = _synced(make_gateway, tmp_path)
    _reconcile(gw, db)
    # repriced: gpt-4.1 at another rate changes b-double's side only
    prices = tmp_path / "other.csv"
    prices.write_text(Path(write_prices(tmp_path)).read_text().replace(
        "*,gpt-4.1,2,8,0.5,,1,4", "*,gpt-4.1,2,8,0.5,,1.5,4"))
    batchlake.reprice(db=db, prices=str(prices))
    before = logs_requests(gw)
    rep = _reconcile(gw, db)
    assert rep.asked == 1 and logs_requests(gw) - before == 2  # the probe and b-double
    assert _by_batch(rep)["b-double"]["status"] == "differs"
    # refetched results: the batch's side is new (loaded_at), asked once again
    batchlake.results(base_url=gw.base_url, providers="anthropic", db=db, refetch=True,
                      prices=str(prices))
    assert _reconcile(gw, db).asked == 1 and _reconcile(gw, db).asked == 0
    # the gateway backfills b-null's cost: asked again after 1 h, not before
    logs_book(gw).fates[("openai", "b-null")] = "settled"
    now = datetime.now(UTC)
    assert _reconcile(gw, db, clock=now + timedelta(minutes=50)).asked == 0
    rep = _reconcile(gw, db, clock=now + timedelta(hours=1, minutes=5))
    assert rep.asked == 2  # b-null and b-missing
    got = _by_batch(rep)
    assert got["b-null"]["status"] == "match" and got["b-missing"]["status"] == "gateway_missing"
    # still missing: the wait doubles (2 h), then 4 h
    assert _reconcile(gw, db, clock=now + timedelta(hours=2, minutes=55)).asked == 0
    assert _reconcile(gw, db, clock=now + timedelta(hours=3, minutes=15)).asked == 1
    assert rows(db, "SELECT checks FROM gateway_batch_costs WHERE batch_id = 'b-missing'"
                ) == [(3,)]
    # --recheck asks about every batch in the window
    assert _reconcile(gw, db, recheck=True).asked == len(STATUSES)


@pytest.mark.parametrize("mode", ["missing", "missing-json", "not-allowed"])
def test_a_gateway_without_the_logs_api_is_one_warning_line(make_gateway: Any,
                                                            tmp_path: Path, mode: str) -> None:
    gw, db = _synced(make_gateway, tmp_path)
    logs_book(gw).mode = mode
    res = invoke("reconcile", "--base-url", gw.base_url, "--db", db, "--providers", PROVIDERS)
    assert res.returncode == 0, res.stderr
    warnings = [ln for ln in res.stderr.splitlines() if ln.startswith("warning:")]
    status = "405" if mode == "not-allowed" else "404"
    assert len(warnings) == 1 and f"no logs API (GET /api/logs answered {status})" in \
        warnings[0]
    assert "Traceback" not in res.stderr and logs_requests(gw) == 1  # the probe alone
    assert rows(db, "SELECT count(*) FROM gateway_batch_costs") == [(0,)]
    # and a sync against it is as it always was
    rep = batchlake.sync(base_url=gw.base_url, providers=PROVIDERS, db=db)
    assert not rep.failed and not any(r.warnings for r in rep.results)


def test_the_logs_api_takes_the_admin_credentials_and_never_shows_them(
        make_gateway: Any, tmp_path: Path) -> None:
    gw, db = _synced(make_gateway, tmp_path)
    logs_book(gw).admin = ("admin", SECRET)
    base = ("reconcile", "--base-url", gw.base_url, "--db", db, "--providers", PROVIDERS)
    none = invoke(*base, "--api-key", "sk-bf-inference")  # an inference key is not enough
    assert none.returncode == 1 and len(none.stderr.strip().splitlines()) == 1
    assert "needs Bifrost's admin credentials" in none.stderr
    assert "BIFROST_ADMIN_USER" in none.stderr and "BIFROST_ADMIN_PASSWORD" in none.stderr
    wrong = invoke(*base, "--admin-user", "admin", env={"BIFROST_ADMIN_PASSWORD": "nope"})
    assert wrong.returncode == 1 and "refused the admin credentials" in wrong.stderr
    half = invoke(*base, env={"BIFROST_ADMIN_PASSWORD": SECRET})
    assert half.returncode == 2 and "BIFROST_ADMIN_USER is not" in half.stderr
    ok = invoke(*base, "--format", "json",
                env={"BIFROST_ADMIN_USER": "admin", "BIFROST_ADMIN_PASSWORD": SECRET})
    assert ok.returncode == 0, ok.stderr
    assert {r["batch_id"]: r["status"] for r in json.loads(ok.stdout)} == STATUSES
    shown = invoke("config", env={"BIFROST_ADMIN_USER": "admin",
                                  "BIFROST_ADMIN_PASSWORD": SECRET})
    assert "admin_password" in shown.stdout and "********" in shown.stdout
    for res in (none, wrong, half, ok, shown):
        assert SECRET not in res.stdout + res.stderr
    tables = [t for (t,) in rows(db, "SELECT table_name FROM information_schema.tables "
                                     "WHERE table_type = 'BASE TABLE'")]
    for table in tables:
        assert rows(db, f'SELECT count(*) FROM "{table}" t WHERE CAST(t AS VARCHAR) LIKE ?',
                    [f"%{SECRET}%"]) == [(0,)], table


def test_a_failing_logs_api_leaves_those_batches_for_the_next_run(
        make_gateway: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gw, db = _synced(make_gateway, tmp_path)
    monkeypatch.setenv("BATCHLAKE_MAX_RETRIES", "1")
    monkeypatch.setenv("BATCHLAKE_BACKOFF_BASE_S", "0.01")
    gw.faults = [Fault("status", endpoint="logs", status=503, skip=1, times=-1)]
    rep = _reconcile(gw, db)
    assert rep.asked == 0 and len(rep.warnings) == 1
    assert rep.warnings[0].startswith(f"{len(STATUSES)} batches not checked")
    assert rows(db, "SELECT count(*) FROM gateway_batch_costs") == [(0,)]
    gw.faults = []
    assert _reconcile(gw, db).asked == len(STATUSES)


def test_the_cli_prints_each_batch_and_json_records(make_gateway: Any, tmp_path: Path
                                                    ) -> None:
    gw, db = _synced(make_gateway, tmp_path)
    base = ("reconcile", "--base-url", gw.base_url, "--db", db, "--providers", PROVIDERS,
            "--since", "30d")
    table = invoke(*base)
    assert table.returncode == 0, table.stderr
    assert table.stdout.index("differs") < table.stdout.index("match")  # differences first
    assert "billed 2 times" in table.stdout and "gateway_missing" in table.stdout
    assert f"{len(STATUSES)} batches reconciled" in table.stderr
    assert "asked the gateway about 9" in table.stderr
    records = json.loads(invoke(*base, "--format", "json").stdout)
    assert len(records) == len(STATUSES)
    assert {"provider", "batch_id", "batchlake_cost", "gateway_cost", "difference", "status",
            "reason"} <= set(records[0])
    # another tolerance classifies every batch again, once: b-rate is 25 % apart
    loose = json.loads(invoke(*base, "--tolerance-pct", "30", "--format", "json").stdout)
    assert {r["batch_id"]: r["status"] for r in loose}["b-rate"] == "match"
    assert "asked the gateway about 0" in invoke(*base, "--tolerance-pct", "30").stderr
    no_window = invoke("reconcile", "--base-url", gw.base_url, "--db", db, "--since", "1x")
    assert no_window.returncode == 2 and "duration '1x'" in no_window.stderr
    nothing = invoke("reconcile", "--base-url", gw.base_url, "--db",
                     str(tmp_path / "none.duckdb"))
    assert nothing.returncode == 1 and "no database at" in nothing.stderr
    assert not (tmp_path / "none.duckdb").exists()


def test_reconcile_runs_as_a_real_process_against_batchlake_gateway(tmp_path: Path) -> None:
    """`batchlake gateway` serves the logs API behind admin credentials; `batchlake
    reconcile`, a process of its own, reads it with them from the environment."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchlake", "gateway", "--port", "0", "--batches", "60",
         "--providers", PROVIDERS, "--admin-user", "admin", "--admin-password", SECRET],
        stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stderr is not None
        url = proc.stderr.readline().split(" on ")[1].split()[0]
        db = str(tmp_path / "lake.duckdb")
        assert run_cli("sync", "--base-url", url, "--db", db, "--providers", PROVIDERS,
                       "--prices", write_prices(tmp_path), "--results-budget", "0"
                       ).returncode == 0
        env = {"BIFROST_ADMIN_USER": "admin", "BIFROST_ADMIN_PASSWORD": SECRET}
        res = run_cli("reconcile", "--base-url", url, "--db", db, "--providers", PROVIDERS,
                      "--format", "json", env=env)
        assert res.returncode == 0, res.stderr
        records = json.loads(res.stdout)
        loaded = rows(db, "SELECT count(*) FROM batch_results_state WHERE state = 'loaded'")
        assert len(records) == loaded[0][0] > 0
        assert {r["status"] for r in records} <= set(batchlake.Reconciled(
            records=pl.DataFrame()).counts()) and any(r["status"] == "match" for r in records)
        again = run_cli("reconcile", "--base-url", url, "--db", db, "--providers", PROVIDERS,
                        env=env)
        assert again.returncode == 0 and "asked the gateway about 0 in 0 requests" in \
            again.stderr
        assert SECRET not in res.stdout + res.stderr + again.stdout + again.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_report_and_the_view_sum_it_per_provider_and_day(make_gateway: Any,
                                                             tmp_path: Path) -> None:
    gw, db = _synced(make_gateway, tmp_path)
    rep = _reconcile(gw, db)
    section = batchlake.report(db=db).sections["cost_reconcile"]
    got = {r["provider"]: r for r in section.to_dicts()}
    # the batches were created on different days: sum the days per provider
    sums = {p: {k: sum(r[k] for r in section.to_dicts() if r["provider"] == p)
                for k in ("batches_checked", "matched", "differing", "gateway_unpriced",
                          "gateway_missing", "batchlake_unpriced")} for p in got}
    assert sums["openai"] == {"batches_checked": 8, "matched": 3, "differing": 2,
                              "gateway_unpriced": 1, "gateway_missing": 1,
                              "batchlake_unpriced": 1}
    assert sums["anthropic"]["differing"] == 1
    diff = sum(r["difference"] for r in rep.records.to_dicts() if r["status"] == "differs")
    assert sum(r["differing_usd"] or 0 for r in section.to_dicts()) == pytest.approx(
        diff, abs=1e-5)
    assert "Cost Reconcile" in batchlake.report(db=db).to_html()
    lake = batchlake.connect(db)
    assert batchlake.views(lake)["v_cost_reconcile"].height == section.height


def test_reconcile_has_a_python_twin_with_its_parameters() -> None:
    cmd = typer.main.get_group(app).commands["reconcile"]  # type: ignore[attr-defined]
    cli = {p.name for p in cmd.params if p.name} - {"fmt"}
    twin = set(inspect.signature(batchlake.reconcile).parameters)
    assert cli <= twin and twin - cli == {"config", "clock"}


def test_the_simulated_logs_api_answers_and_pages_as_bifrosts(make_gateway: Any) -> None:
    gw = reconcile_gateway(make_gateway)
    get = httpx.Client(base_url=gw.base_url, timeout=5).get
    for params, message in (({"limit": 0}, "limit must be greater than 0"),
                            ({"limit": 1001}, "limit cannot exceed 1000"),
                            ({"offset": -1}, "offset cannot be negative")):
        res = get("/api/logs", params=params)
        assert res.status_code == 400 and res.json()["error"]["message"] == message
    everything = get("/api/logs", params={"objects": "batch_results", "limit": 1000}).json()
    total = everything["pagination"]["total_count"]
    echoes = [r for r in everything["logs"] if r["batch_debug"]["accounting"].get("echo")]
    assert total == len(everything["logs"]) == len(STATUSES) - 1 + len(echoes)
    assert all("cost" not in r and r["batch_debug"]["accounting"]["cost"] for r in echoes)
    stamps = [r["timestamp"] for r in everything["logs"]]
    assert stamps == sorted(stamps, reverse=True)  # newest first, as Bifrost sorts
    paged = [r["id"] for offset in range(0, total, 4) for r in get("/api/logs", params={
        "limit": 4, "offset": offset, "order": "asc"}).json()["logs"]]
    assert sorted(paged) == sorted(r["id"] for r in everything["logs"]) and len(set(paged)) \
        == total
    only = get("/api/logs", params={"providers": "anthropic", "limit": 1000}).json()
    assert [r["batch_debug"]["batch_id"] for r in only["logs"]] == ["m-cache"]
    late = get("/api/logs", params={"start_time": "2999-01-01T00:00:00Z"}).json()
    assert late["logs"] == [] and late["has_logs"] is False
    echo = get(f"/api/logs/{echoes[0]['id']}").json()
    assert echo["batch_debug"]["accounting"]["echo"] is True
    gone = get("/api/logs/00000000-0000-0000-0000-000000000000")
    assert gone.status_code == 404 and gone.json()["error"]["message"] == "log not found"


def test_rows_of_older_builds_are_found_in_the_list_page_by_page(
        make_gateway: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gw, db = _synced(make_gateway, tmp_path)
    book = logs_book(gw)
    for key in book.fates:
        book.fates[key] = "legacy-id"
    monkeypatch.setattr("batchlake.gateway.logs_api.PAGE", 3)
    rep = _reconcile(gw, db)
    # a probe, a request by id per batch (each a 404), then a listing per provider, 3 rows
    # a page: OpenAI's 8 cost rows and their 6 echo rows, Anthropic's one row
    assert sum(n for (p, _), n in book.echoes.items() if p == "openai") == 6
    assert rep.requests == 1 + len(STATUSES) + 5 + 1
    assert set(rep.records.get_column("found_by")) == {"list"}
    assert rep.counts()["gateway_missing"] == 0
