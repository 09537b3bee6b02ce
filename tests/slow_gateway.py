"""For the tests of reading results from a slow gateway (tests/test_results_adaptive.py):
histories of finished batches on any provider, and a log of what reached the gateway's
paced routes (simulator/route_pacing.py), in order."""

from __future__ import annotations

import threading
import time

from batchlake.simulator import SimGateway
from tests.results_fixtures import body, chat, finished


def add_history(gw: SimGateway, provider: str, n: int, *, lines: int = 3,
                prefix: str = "b") -> list[str]:
    """``n`` finished batches of ``provider`` (``prefix``000 the newest), each with a body
    of ``lines`` chat lines; their ids."""
    ids = []
    for i in range(n):
        bid = f"{prefix}{i:03d}"
        gw.add_plan(finished(provider, bid, 1 + i * 0.01))
        gw.results_bodies[(provider, bid)] = body(bid, [
            chat(f"{bid}-{k}", "gpt-4o-mini", 10, 0, 5) for k in range(lines)])
        ids.append(bid)
    return ids


class Admissions:
    """Every request that reached the gateway's pacing, in order: (monotonic time, route,
    admitted), and the gateway's request counts when the first results request came."""

    def __init__(self, gw: SimGateway) -> None:
        self.log: list[tuple[float, str, bool]] = []
        self.at_first_results: dict[tuple[str, str], int] | None = None
        self._lock = threading.Lock()
        admit = gw.pacing.admit

        def recorded(route: str) -> bool:
            ok = admit(route)
            with self._lock:
                self.log.append((time.monotonic(), route, ok))
                if route == "results" and self.at_first_results is None:
                    self.at_first_results = dict(gw.requests)
            return ok

        gw.pacing.admit = recorded  # type: ignore[method-assign]

    def refusals(self, route: str) -> list[float]:
        return [t for t, r, ok in self.log if r == route and not ok]

    def arrivals(self, route: str, after: float, before: float) -> int:
        return sum(1 for t, r, _ in self.log if r == route and after < t < before)
