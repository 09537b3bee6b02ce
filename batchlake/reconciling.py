"""The reconcile stage: each finished batch's cost beside the cost the gateway itself recorded
(Bifrost 2's batch cost row in its logs API), compared and stored in ``gateway_batch_costs``;
``reconcile`` is ``batchlake reconcile``'s Python twin.

Cheap to run again: only batches that are due are asked (never compared, batchlake's side
changed since, or a missing or unpriced gateway cost whose backoff passed); with none due it
makes no request at all. The DuckDB file is held only to read the candidates and to write the
comparisons, never while the gateway answers. Rules: docs/costs.md.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from batchlake.common import ConfigError, DatabaseError, GatewayError, Settings
from batchlake.gateway import LogsApi
from batchlake.run import new_run_id
from batchlake.transforms import (
    RECONCILE_STATUSES,
    BatchlakeSide,
    GatewayCost,
    Tolerance,
    compare,
    parse_cost_row,
    pick_cost_row,
)
from batchlake.warehouse import (
    Checked,
    ReconcileCandidate,
    Warehouse,
    batchlake_sides,
    is_local_file,
    reconcile_candidates,
    reconcile_records,
    store_comparisons,
)

# The list fallback looks for a batch's row logged from an hour before it finished to a day
# after its results were loaded: Bifrost settles a batch at the first /results call (the
# one batchlake made) or by its sweeper soon after the batch ends.
BEFORE_FINISH = timedelta(hours=1)
AFTER_LOADED = timedelta(days=1)


@dataclass(frozen=True)
class Reconciled:
    """What ``batchlake reconcile`` found: the last comparison of every batch in the window
    (``records``: provider, batch_id, batchlake_cost, gateway_cost, difference, status,
    reason, log_id, found_by, fetched_at), how many the gateway was asked about this run,
    the requests it took, and the warnings (a gateway without the logs API is one)."""

    records: pl.DataFrame
    asked: int = 0
    not_due: int = 0  # batches in the window compared before, nothing changed since
    requests: int = 0
    logs_api: bool | None = None  # None: not asked (nothing was due)
    warnings: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Batches per status (every status, 0 included)."""
        have = dict(self.records.group_by("status").len().iter_rows()) \
            if self.records.height else {}
        return {s: int(have.get(s, 0)) for s in RECONCILE_STATUSES}

    def summary(self) -> str:
        """One line: batches per status, what was asked, what was not."""
        counts = ", ".join(f"{n:,} {s}" for s, n in self.counts().items() if n)
        return (f"{self.records.height:,} batches reconciled ({counts or 'none'}); asked the "
                f"gateway about {self.asked:,} in {self.requests:,} requests, "
                f"{self.not_due:,} unchanged since their last check")


def _check_admin(settings: Settings) -> None:
    a = settings.auth
    if a.admin_password is not None and a.admin_user is None:
        raise ConfigError("BIFROST_ADMIN_PASSWORD is set but BIFROST_ADMIN_USER is not; set "
                          "both (env or config file), or pass --admin-user")
    if a.admin_user is not None and a.admin_password is None:
        raise ConfigError("an admin user is given but no password; set "
                          "BIFROST_ADMIN_PASSWORD in the environment or admin_password in "
                          "the config file (never an option: it would show in process lists)")


def _look_up(api: LogsApi, due: list[ReconcileCandidate], now: datetime
             ) -> tuple[dict[tuple[str, str], tuple[GatewayCost | None, str | None, int]],
                        list[str]]:
    """Each due batch's cost row: by its id, else (the ids of older builds) from the list
    of the provider's batch rows around its finish. Batches the gateway could not answer
    for (after retries) are left out, with one warning line."""
    found: dict[tuple[str, str], tuple[GatewayCost | None, str | None, int]] = {}
    failed: list[str] = []
    fallback: dict[str, list[ReconcileCandidate]] = defaultdict(list)
    by_key = {(c.provider, c.batch_id): c for c in due}
    for key, answer in api.cost_rows(by_key):
        if isinstance(answer, GatewayError):
            failed.append(str(answer))
            continue
        row = parse_cost_row(answer)
        if row is not None and not row.echo and row.batch_id == key[1]:
            found[key] = (row, "id", 0)
        else:
            fallback[key[0]].append(by_key[key])
    for provider, batches in fallback.items():
        start = min(_at(c.finished_at, now) for c in batches) - BEFORE_FINISH
        end = min(now, max(_at(c.loaded_at or c.finished_at, now) for c in batches)
                  + AFTER_LOADED)
        wanted = {c.batch_id for c in batches}
        rows: dict[str, list[Any]] = defaultdict(list)
        try:
            for raw in api.batch_rows(provider, start, end):
                parsed = parse_cost_row(raw)
                if parsed is not None and parsed.batch_id in wanted:
                    rows[parsed.batch_id].append(raw)
        except GatewayError as e:
            failed += [str(e)] * len(batches)
            continue
        for c in batches:
            row, others = pick_cost_row(rows[c.batch_id], provider, c.batch_id)
            found[(provider, c.batch_id)] = (row, "list" if row else None, others)
    warnings = []
    if failed:
        warnings.append(f"{len(failed):,} batches not checked, asked again next run: "
                        f"{failed[0]}")
    return found, warnings


def _at(when: datetime | None, default: datetime) -> datetime:
    if when is None:
        return default
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def run_reconcile(settings: Settings, *, since: timedelta | None, recheck: bool = False,
                  clock: datetime | None = None) -> Reconciled:
    """Reconcile with resolved settings: ask the gateway about the due batches created in
    the ``since`` window (None: all), store the comparisons, return every batch's last.
    ``clock``: the run's time (default now), from which the window and the backoff of a
    missing or unpriced gateway cost count (tests simulate later runs)."""
    _check_admin(settings)
    db = settings.db_path
    if is_local_file(db) and not Path(db).exists():
        raise DatabaseError(f"no database at {db}; run `batchlake sync` first, or pass --db")
    now = clock or datetime.now(UTC)
    start = now - since if since is not None else None
    tol = Tolerance(settings.reconcile_tolerance_pct, settings.reconcile_tolerance_usd)
    with Warehouse(db, lock_timeout_s=settings.lock_timeout_s) as wh:
        candidates = reconcile_candidates(wh, settings.providers, start, now, recheck,
                                          f"{tol.pct!r}%|{tol.usd!r}")
        due = [c for c in candidates if c.due]
        if not due:  # the common run: nothing to ask, nothing to store
            return Reconciled(reconcile_records(wh, settings.providers, start), asked=0,
                              not_due=len(candidates), requests=0, logs_api=None,
                              warnings=[])
        sides = batchlake_sides(wh, [(c.provider, c.batch_id) for c in due])
    asked = 0
    warnings: list[str] = []
    checked: list[Checked] = []
    with LogsApi(settings) as api:
        probe = api.probe()
        logs_api = probe.available
        if not probe.available:
            warnings.append(probe.why or "the gateway has no logs API")
        else:
            if probe.rows == 0:
                warnings.append("the gateway's logs hold no batch cost rows at all: "
                                "Bifrost prices batches from v2.0.0 on")
            found, failed = _look_up(api, due, now)
            warnings += failed
            checked = [_checked(sides[k], found[k], tol, c.fingerprint)
                       for c in due if (k := (c.provider, c.batch_id)) in found]
            asked = len(checked)
        requests = api.requests
    with Warehouse(db, lock_timeout_s=settings.lock_timeout_s) as wh:
        store_comparisons(wh, checked, new_run_id(), now)
        records = reconcile_records(wh, settings.providers, start)
    return Reconciled(records, asked=asked, not_due=len(candidates) - len(due),
                      requests=requests, logs_api=logs_api, warnings=warnings)


def _checked(side: BatchlakeSide, found: tuple[GatewayCost | None, str | None, int],
             tol: Tolerance, fingerprint: str) -> Checked:
    row, how, others = found
    cmp = compare(side, row, tol)
    if row is None and others:  # say why the rows the gateway does have were not the bill
        cmp = replace(cmp, reason=f"{cmp.reason} ({others:,} echo row"
                      f"{'' if others == 1 else 's'} of later /results fetches passed over: "
                      "never the bill)")
    return Checked(cmp, row, how, others, fingerprint)


def reconcile(*, base_url: str | None = None, providers: str | Sequence[str] | None = None,
              db: str | None = None, api_key: str | None = None,
              api_key_header: str | None = None, admin_user: str | None = None,
              since: str | None = "30d", recheck: bool = False,
              tolerance_pct: float | None = None, tolerance_usd: float | None = None,
              lock_timeout: float | None = None, config: str | None = None,
              clock: datetime | None = None) -> Reconciled:
    """``batchlake reconcile``: each finished batch's cost (results loaded, created in the
    last ``since``, e.g. '30d'; None: all) beside the cost the gateway itself recorded, with a
    status per batch: match (within max(``tolerance_pct`` % of the larger, ``tolerance_usd``)
    USD; defaults 0.01 % and $0.0001), differs (with the reason the data tells),
    gateway_unpriced, gateway_missing, batchlake_unpriced. Asks only about batches that are due
    (``recheck``: every batch in the window). The gateway's logs API takes Bifrost's admin
    credentials: ``admin_user`` (BIFROST_ADMIN_USER), the password from BIFROST_ADMIN_PASSWORD
    or the config file only.

    >>> batchlake.reconcile(db="lake.duckdb", since="7d").records
    """
    from batchlake.commands import settings_for
    from batchlake.report_frames import parse_duration

    settings = settings_for(config, base_url=base_url, api_key=api_key,
                            api_key_header=api_key_header, db=db, providers=providers,
                            admin_user=admin_user, reconcile_tolerance_pct=tolerance_pct,
                            reconcile_tolerance_usd=tolerance_usd, lock_timeout=lock_timeout)
    window = parse_duration(since) if since else None
    return run_reconcile(settings, since=window, recheck=recheck, clock=clock)
