"""What a stored row must hold for a given gateway object, read straight from the JSON by the
schema's source paths (independently of the flattener's code), and the checks that a
database holds exactly what the simulated gateway serves."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from batchlake.transforms.schema import ALWAYS_SENT_COUNTS, SOURCED_BATCH_COLUMNS
from tests.conftest import read_only, rows


def _get(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def expected_values(obj: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c in SOURCED_BATCH_COLUMNS:
        if c.name == "provider" or c.kind == "json":
            continue
        assert c.source is not None
        v = _get(obj, c.source)
        if v is None and c.source[-1] in ("model_requested", "model_deployment"):
            alias = {"model_requested": "original_model_requested",
                     "model_deployment": "resolved_model_used"}[c.source[-1]]
            v = _get(obj, (*c.source[:-1], alias))
        if c.kind == "ts":
            v = datetime.fromtimestamp(v, UTC) if v else None
        elif c.kind == "float" and v is not None:
            v = float(v)
        elif (c.source[0] == "request_counts" and v is None
              and c.source[-1] not in ALWAYS_SENT_COUNTS):
            v = 0
        out[c.name] = v
    return out


def compare_row(obj: dict[str, Any], row: dict[str, Any]) -> list[str]:
    """Differences between what the gateway sent and what was stored."""
    diffs = []
    for k, want in expected_values(obj).items():
        got = row.get(k)
        if isinstance(want, float) and isinstance(got, float):
            if abs(want - got) > 1e-9 * max(1.0, abs(want)):
                diffs.append(f"{k}: {got!r} != {want!r}")
        elif got != want:
            diffs.append(f"{k}: {got!r} != {want!r}")
    return diffs


def stored(db: str, provider: str | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    with read_only(db) as con:
        q = "SELECT * FROM batches" + (" WHERE provider = ?" if provider else "")
        cur = con.execute(q, [provider] if provider else [])
        names = [d[0] for d in cur.description]
        return {(r[0], r[1]): dict(zip(names, r, strict=True)) for r in cur.fetchall()}


def assert_keys_unique(db: str) -> None:
    """Nothing doubled: the keys the merge keeps unique (no index enforces them)."""
    for table, key in (("batches", "provider, batch_id"),
                       ("batch_errors", "provider, batch_id, idx"),
                       ("batch_metadata", "provider, batch_id, key"),
                       ("batch_snapshots", "provider, batch_id, observed_at")):
        dup = rows(db, f"SELECT count(*) FROM (SELECT {key} FROM {table} GROUP BY ALL "
                       "HAVING count(*) > 1)")
        assert dup == [(0,)], f"duplicate keys in {table}"


def assert_matches_truth(gw: Any, db: str) -> None:
    assert_keys_unique(db)
    table = stored(db)
    expected = {(p, o["id"]): o for p in gw.providers for o in gw.truth(p)}
    assert set(table) == set(expected), "stored batches differ from the gateway's"
    for key, obj in expected.items():
        diffs = compare_row(obj, table[key])
        assert not diffs, f"{key}: {diffs}"


def assert_matches_truth_open_batches(gw: Any, db: str) -> None:
    """Incremental syncs must agree with the gateway on every batch they store."""
    table = stored(db)
    for p in gw.providers:
        for o in gw.truth(p):
            row = table.get((p, o["id"]))
            assert row is not None, f"{p} {o['id']} missing"
            assert row["status"] == o["status"], (p, o["id"])
