"""A real gateway's pace on the simulated one, per route (the route table's names: ``list``,
``retrieve``, ``results``, and any route added later):

- a latency: how long the gateway takes before an answer's headers (Bifrost answers a list
  page in ~300 ms, a retrieve in ~200 ms and a results body in ~600 ms, as it first downloads
  the provider's file), optionally with jitter;
- a cap on requests in flight (providers rate-limit file downloads): a request arriving while
  ``max_inflight[route]`` of its route are in flight is answered 429 at once, with a
  ``Retry-After`` of whole seconds and a provider's error body, without waiting the latency.

A request is in flight from its admission (after the gateway's own key and ``provider``
checks, which answer at once) until its answer is written, latency and injected delays
included. The server runs a thread per connection, so requests on different connections wait
their latencies together, and a kept-alive connection's answers leave in the order its
requests came (each waits after the answer before it).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any


class RoutePacing:
    """Latencies and in-flight caps per route, and what they did.

    ``latency``: route -> seconds before each answer's headers (absent: none).
    ``jitter``: each wait is drawn uniformly from latency × [1 - jitter, 1 + jitter] (0 to 1).
    ``max_inflight``: route -> requests in flight at most (absent: no cap).
    ``retry_after_s``: the whole seconds a 429 asks the client to wait (``Retry-After``).

    What it counts, per route (Counters; a route never seen is absent, i.e. 0): ``inflight``
    now, ``peak_inflight`` (the most at once), ``throttled`` (429s answered)."""

    def __init__(self, latency: Mapping[str, float] | None = None, *, jitter: float = 0.0,
                 max_inflight: Mapping[str, int] | None = None, retry_after_s: int = 1,
                 seed: int = 7) -> None:
        if any(v < 0 for v in (latency or {}).values()):
            raise ValueError(f"latency must be 0 s or more: {dict(latency or {})}")
        if not 0.0 <= jitter <= 1.0:
            raise ValueError(f"latency jitter is a share of the latency, 0 to 1, not {jitter}")
        if any(v < 1 for v in (max_inflight or {}).values()):
            raise ValueError(f"max_inflight must be 1 or more: {dict(max_inflight or {})}")
        if retry_after_s < 0:
            raise ValueError(f"Retry-After must be 0 s or more, not {retry_after_s}")
        self.latency = dict(latency or {})
        self.jitter = jitter
        self.max_inflight = dict(max_inflight or {})
        self.retry_after_s = retry_after_s
        self.inflight: Counter[str] = Counter()
        self.peak_inflight: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._rng = random.Random(seed)

    def routes(self) -> set[str]:
        """The routes given a latency or a cap."""
        return set(self.latency) | set(self.max_inflight)

    def admit(self, route: str) -> bool:
        """Count a request in flight, or refuse it (counted as throttled) when its route's
        cap is reached. Every admitted request must be ``release``d."""
        with self._lock:
            cap = self.max_inflight.get(route)
            if cap is not None and self.inflight[route] >= cap:
                self.throttled[route] += 1
                return False
            self.inflight[route] += 1
            self.peak_inflight[route] = max(self.peak_inflight[route], self.inflight[route])
            return True

    def release(self, route: str) -> None:
        with self._lock:
            self.inflight[route] -= 1

    def delay_s(self, route: str) -> float:
        """This request's latency: the route's, jittered."""
        base = self.latency.get(route, 0.0)
        if base <= 0 or not self.jitter:
            return base
        with self._lock:
            return base * self._rng.uniform(1 - self.jitter, 1 + self.jitter)

    def wait(self, route: str) -> None:
        delay = self.delay_s(route)
        if delay > 0:
            time.sleep(delay)

    def throttled_answer(self, route: str) -> tuple[str, dict[str, str]]:
        """A 429's message and headers."""
        return (f"rate limit reached: {self.max_inflight.get(route)} {route} requests in "
                f"flight at most; try again in {self.retry_after_s}s",
                {"Retry-After": str(self.retry_after_s)})

    def stats(self) -> dict[str, Any]:
        """The pace set and what it did, as ``GET /_sim/stats`` reports them."""
        with self._lock:
            return {"latency_s": dict(self.latency), "latency_jitter": self.jitter,
                    "max_inflight": dict(self.max_inflight),
                    "retry_after_s": self.retry_after_s,
                    "inflight": dict(self.inflight), "peak_inflight": dict(self.peak_inflight),
                    "throttled": dict(self.throttled)}
