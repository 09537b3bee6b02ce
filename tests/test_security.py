"""Secrets never land anywhere a run writes: output, logs at any level, tables, files."""

from __future__ import annotations

from pathlib import Path

import duckdb

from batchlake.simulator import Fault, SimGateway
from batchlake.transforms import TABLES
from tests.conftest import run_cli

CANARY = "sk-bf-CANARY-7f3a9d1e5b"


def scan_tables(db: str, needle: str) -> list[str]:
    con = duckdb.connect(db, read_only=True)
    hits = []
    try:
        for t in [*(t.name for t in TABLES), "schema_migrations"]:
            for row in con.execute(f'SELECT * FROM "{t}"').fetchall():
                if needle in repr(row):
                    hits.append(f"{t}: {repr(row)[:200]}")
    finally:
        con.close()
    return hits


def test_canary_key_appears_nowhere(tmp_path: Path) -> None:
    gw = SimGateway(200, seed=8, api_key=CANARY)
    leaky = {"request_type": "batch_retrieve", "latency": 12, "chunk_index": 0,
             "raw_request": {"headers": {"Authorization": f"Bearer {CANARY}"}},
             "raw_response": {"api_key": CANARY, "note": f"Bearer {CANARY}"}}
    for i, plan in enumerate(gw.visible("openai")[:6]):
        plan.overrides = {"extra_fields": leaky}
        if i < 2:
            plan.overrides["status"] = 42  # rejected: its payload is stored, redacted
    gw.faults = [Fault("status", status=503, times=1), Fault("reset", times=1, skip=3)]
    gw.start()
    db = str(tmp_path / "lake.duckdb")
    try:
        env = {"BIFROST_API_KEY": CANARY, "BATCHLAKE_LOG_LEVEL": "DEBUG"}
        outputs = []
        for extra in ([], ["--full-refresh"]):
            res = run_cli("sync", "--base-url", gw.base_url, "--db", db, "--store-raw",
                          *extra, env=env)
            assert res.returncode == 0, res.stderr
            outputs += [res.stdout, res.stderr]
        # the wrong key, too: an auth failure must not echo what was sent
        bad = run_cli("sync", "--base-url", gw.base_url, "--db", db,
                      env={"BIFROST_API_KEY": CANARY + "x", "BATCHLAKE_LOG_LEVEL": "DEBUG"})
        outputs += [bad.stdout, bad.stderr]
    finally:
        gw.stop()
    assert "DEBUG" in "".join(outputs)  # the logs really ran at debug level
    assert not [o for o in outputs if CANARY in o]
    assert not scan_tables(db, CANARY)
    assert scan_tables(db, "[REDACTED]")  # the raw payloads were kept, redacted
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert CANARY.encode() not in f.read_bytes(), f


def test_settings_repr_hides_secrets() -> None:
    from batchlake.common import Auth, Settings

    s = Settings(base_url="http://user:pw-secret@host:8080",
                 auth=Auth(api_key=CANARY, basic_user="u", basic_password="pw-secret"))
    assert CANARY not in repr(s) and "pw-secret" not in repr(s) and "pw-secret" not in str(s)


def test_https_verification_is_on_by_default() -> None:
    from batchlake.common import Settings

    assert Settings().verify_tls is True


