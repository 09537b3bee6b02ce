"""The demo: the simulated gateway synced twice into a fresh database, three simulated hours
apart; the second sync runs at the wall clock's now, so no time the report shows lies in the
future."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from batchlake import commands
from batchlake.common import Settings
from batchlake.run import SyncReport

LATER_S = 3 * 3600  # between the two syncs: some batches move on, some new ones arrive


def run_demo(db: str, *, batches: int = 2000, seed: int = 7, prefect: bool = False,
             on_wait: commands.OnWait | None = None,
             then: Callable[[str], None] | None = None) -> tuple[SyncReport, SyncReport]:
    """Sync a fresh simulated world into ``db`` twice; both runs' reports. ``then`` is
    called with the gateway's URL after the second sync, while it still serves (the demo's
    retry reads input files from it)."""
    from batchlake.simulator import SimGateway
    from batchlake.warehouse import connect

    commands.fresh_demo_db(db, on_wait)
    now = int(time.time())
    with SimGateway(batches, seed=seed, future_share=0.1, now=now - LATER_S) as gw:
        settings = Settings(base_url=gw.base_url, db_path=db)
        first = commands.run_sync(settings, prefect=prefect,
                                  clock=datetime.fromtimestamp(now - LATER_S, UTC))
        gw.advance(LATER_S)
        # the run's clock moves too (the polling backoff counts the hours since last seen)
        second = commands.run_sync(settings, prefect=prefect,
                                   clock=datetime.fromtimestamp(now, UTC))
        if then is not None:
            then(gw.base_url)
    con = connect(db)
    try:
        con.execute("CREATE TABLE IF NOT EXISTS demo_info AS SELECT now() AS created_at")
    finally:
        con.close()
    return first, second
