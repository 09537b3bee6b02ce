"""The simulator's own routes, outside Bifrost's API: ``GET /health`` (as Bifrost has),
``GET /_sim/stats``, ``POST /_sim/advance?seconds=N`` and ``POST /_sim/faults``."""

from __future__ import annotations

from dataclasses import asdict

import orjson

from batchlake.simulator.exchange import Exchange
from batchlake.simulator.injected_faults import Fault


def health(ex: Exchange) -> None:
    ex.send(200, b'{"status":"ok"}')


def sim_stats(ex: Exchange) -> None:
    ex.send(200, orjson.dumps(ex.gateway.stats()))


def sim_advance(ex: Exchange) -> None:
    ex.gateway.advance(int(ex.arg("seconds") or "0"))
    ex.send(200, orjson.dumps({"now": ex.gateway.now}))


def sim_faults(ex: Exchange) -> None:
    """Replace the gateway's faults with the body's list of ``Fault`` fields."""
    ex.gateway.faults = [Fault(**f) for f in orjson.loads(ex.body or b"[]")]
    ex.send(200, orjson.dumps([asdict(f) for f in ex.gateway.faults]))
