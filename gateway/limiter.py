"""How many requests batchlake keeps at the gateway at once: an adaptive limit (a window, as
TCP's congestion window) shared by everything one ``GatewayClient`` asks one at a time per
batch: results bodies, by-id follow-ups and Bifrost model look-ups. Listing pages, one
provider at a time, are not counted.

A real gateway answers a results body in hundreds of milliseconds (Bifrost downloads the
provider's file before it answers) and rate-limits downloads: a fixed number in flight is
either slow or a 429 storm. The window follows what the gateway answers:

- slow start: from ``initial``, +1 per clean answer while the window is in use (it doubles
  every round trip), until the first sign of trouble;
- then +1 per round trip (+1/window per clean answer), and, near a window that drew a 429
  before (the ceiling), +1 per ``PROBE_ROUND_TRIPS`` round trips: a gateway that caps
  concurrency is probed now and then, not every few round trips;
- a 429: the window drops to ``OVERLOAD_DECREASE`` x the requests in flight when the refused
  one was sent, and no new request starts before its Retry-After (capped at
  ``max_pause_s``): the other requests respect the gateway's wish too;
- a 5xx, a reset or a timeout: x ``FAILURE_DECREASE``;
- rising latency: each answer's time to headers (not the body's, whose size varies) is
  compared with its route's floor (the least of its recent answers); once the smoothed
  excess passes ``LATENCY_TOLERANCE`` (double the floor plus ``LATENCY_SLACK_S``): x
  ``LATENCY_DECREASE``. Queueing shows there, at the gateway or in this process (whose
  cores parse the bodies); each route has its own floor, so fast retrieves mixed with slow
  results bodies are no signal;
- one decrease per round trip: only an answer to a request sent after the last decrease
  can decrease again (the answers of one overload arrive together).

Bounds: at least ``minimum`` (1), at most ``maximum`` (the ``max_inflight`` setting). A
request holds its slot until its body is read (``Slot.release``), so the window counts what
the gateway may still be serving. Pure: the clock is a parameter (tests run on a fake one).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

OVERLOAD_DECREASE = 0.7  # a 429: the window it came at, times this
FAILURE_DECREASE = 0.8  # a 5xx, a reset, a timeout
LATENCY_DECREASE = 0.9  # time to headers well above the route's floor
LATENCY_TOLERANCE = 1.0  # smoothed excess over the floor that counts as queueing
SLOW_START_EXIT = 0.5  # smoothed excess that ends slow start without a decrease
LATENCY_SLACK_S = 0.05  # loopback floors are ~1 ms: jitter is not queueing
MAX_SAMPLE_EXCESS = 2.0  # one slow answer (a big body) moves the average, never trips it
SMOOTHING = 0.2  # weight of the newest answer in the smoothed excess
FLOOR_ANSWERS = 200  # a route's floor is the least of its last 200-400 answers
PROBE_ROUND_TRIPS = 8  # near the ceiling, one step per this many round trips
BUSY_SHARE = 0.5  # a clean answer grows the window if this share of it was in use


@dataclass
class LimitStats:
    """What the window saw: counts of verdicts, its range, and its decreases."""

    answered: int = 0
    overloaded: int = 0
    failed: int = 0
    decreases: int = 0
    lowest: int = 0
    highest: int = 0
    peak_inflight: int = 0
    paused_s: float = 0.0


class _Floor:
    """The least time to headers of a route's recent answers: two buckets of
    FLOOR_ANSWERS, so the floor follows a gateway that became slower for good."""

    def __init__(self) -> None:
        self.previous = float("inf")
        self.current = float("inf")
        self.count = 0

    def add(self, seconds: float) -> float:
        if self.count >= FLOOR_ANSWERS:
            self.previous, self.current, self.count = self.current, float("inf"), 0
        self.current = min(self.current, seconds)
        self.count += 1
        return min(self.previous, self.current)


class Slot:
    """One request's place in the window, from before it is sent until its body is read.
    Tell the window what came back (``answered``, ``overloaded``, ``failed``; nothing for
    an answer that says nothing about load, a 404), then ``release`` it."""

    __slots__ = ("_limit", "_released", "busy", "epoch", "inflight")

    def __init__(self, limit: AdaptiveLimit, epoch: int, inflight: int, busy: bool) -> None:
        self._limit = limit
        self.epoch = epoch  # decreases before it was sent
        self.inflight = inflight  # requests in flight with it, when it was sent
        self.busy = busy  # the window was in use: a clean answer may grow it
        self._released = False

    def answered(self, route: str, seconds: float) -> None:
        """A clean answer whose headers came ``seconds`` after the request was sent."""
        self._limit._answered(self, route, seconds)

    def overloaded(self, retry_after: float | None) -> None:
        """A 429, with the gateway's Retry-After in seconds, if it sent one."""
        self._limit._overloaded(self, retry_after)

    def failed(self) -> None:
        """A 5xx, a reset, a timeout: the gateway is struggling."""
        self._limit._failed(self)

    def release(self) -> None:
        """The request is over (its body read, or abandoned); idempotent."""
        if not self._released:
            self._released = True
            self._limit._release()


class AdaptiveLimit:
    """The window (see the module). Thread-safe; ``acquire`` blocks for a slot."""

    def __init__(self, *, initial: int = 8, maximum: int = 64, minimum: int = 1,
                 max_pause_s: float = 30.0, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        if not 1 <= minimum <= maximum:
            raise ValueError(f"the window's bounds are 1 <= {minimum} <= {maximum}")
        self.minimum, self.maximum = minimum, maximum
        self.max_pause_s = max_pause_s
        self._clock = clock
        self._cond = threading.Condition()
        self._window = float(min(maximum, max(minimum, initial)))
        self._inflight = 0
        self._slow_start = True
        self._epoch = 0
        self._paused_until = 0.0
        self._floors: dict[str, _Floor] = {}
        self._excess = 0.0  # smoothed excess of time to headers over the routes' floors
        self._ceiling: float | None = None  # requests in flight when a 429 came
        self.stats = LimitStats(lowest=int(self._window), highest=int(self._window))

    @property
    def window(self) -> int:
        """Requests that may be in flight now."""
        return int(self._window)

    @property
    def inflight(self) -> int:
        return self._inflight

    def paused_for(self) -> float:
        """Seconds before a new request may start (a 429's Retry-After), 0 when none."""
        return max(0.0, self._paused_until - self._clock())

    def acquire(self, timeout: float | None = None) -> Slot | None:
        """A slot once the window has room and no Retry-After holds requests back; None
        when ``timeout`` seconds pass first (0: do not wait)."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while True:
                now = self._clock()
                wait: float | None = None
                if now < self._paused_until:
                    wait = self._paused_until - now
                elif self._inflight < int(self._window):
                    break
                if deadline is not None:
                    if now >= deadline:
                        return None
                    wait = deadline - now if wait is None else min(wait, deadline - now)
                self._cond.wait(wait)
            self._inflight += 1
            self.stats.peak_inflight = max(self.stats.peak_inflight, self._inflight)
            busy = self._inflight >= BUSY_SHARE * self._window
            return Slot(self, self._epoch, self._inflight, busy)

    def acquire_nested(self) -> Slot:
        """A slot at once, past the window if need be, for a request made on behalf of one
        that holds a slot (a Bedrock batch's model, asked while its results body streams):
        waiting could wait for the holder's own slot. It still counts in flight, so other
        requests wait for it, and its answer counts like any."""
        with self._cond:
            self._inflight += 1
            self.stats.peak_inflight = max(self.stats.peak_inflight, self._inflight)
            return Slot(self, self._epoch, self._inflight, busy=False)

    # -- verdicts (under the lock) ------------------------------------------------------
    def _answered(self, slot: Slot, route: str, seconds: float) -> None:
        with self._cond:
            self.stats.answered += 1
            floor = self._floors.setdefault(route, _Floor()).add(seconds)
            excess = min(MAX_SAMPLE_EXCESS, max(0.0, seconds - floor) / (floor + LATENCY_SLACK_S))
            self._excess += (excess - self._excess) * SMOOTHING
            if self._excess > LATENCY_TOLERANCE:
                self._decrease(slot, self._window * LATENCY_DECREASE)
                return
            if self._slow_start and self._excess > SLOW_START_EXIT:
                self._slow_start = False
            # In use when it was sent or now (a burst from an empty window counts); and not
            # an answer to a request sent before the last decrease.
            busy = slot.busy or self._inflight >= BUSY_SHARE * self._window
            if busy and slot.epoch == self._epoch:
                self._grow()

    def _grow(self) -> None:
        if self._slow_start:
            step = 1.0
        elif self._ceiling is not None and self._window >= self._ceiling * 0.9:
            step = 1.0 / (self._window * PROBE_ROUND_TRIPS)
        else:
            step = 1.0 / self._window
        self._set(self._window + step)
        if self._ceiling is not None and self._window > self._ceiling * 1.5:
            self._ceiling = None  # the gateway takes more now: probe at the usual pace

    def _overloaded(self, slot: Slot, retry_after: float | None) -> None:
        with self._cond:
            self.stats.overloaded += 1
            if retry_after:
                until = self._clock() + min(retry_after, self.max_pause_s)
                if until > self._paused_until:
                    self.stats.paused_s += until - max(self._paused_until, self._clock())
                    self._paused_until = until
                    self._cond.notify_all()  # waiters re-check their wait
            refused_at = min(self._window, slot.inflight)
            if slot.epoch == self._epoch:
                self._ceiling = (refused_at if self._ceiling is None
                                 else (self._ceiling + refused_at) / 2)
            self._decrease(slot, refused_at * OVERLOAD_DECREASE)

    def _failed(self, slot: Slot) -> None:
        with self._cond:
            self.stats.failed += 1
            self._decrease(slot, self._window * FAILURE_DECREASE)

    def _decrease(self, slot: Slot, to: float) -> None:
        self._slow_start = False
        if slot.epoch != self._epoch:
            return  # sent before the last decrease: that round trip has paid already
        self._epoch += 1
        self.stats.decreases += 1
        self._excess = 0.0  # the next decrease needs fresh evidence
        self._set(min(self._window, to))

    def _set(self, window: float) -> None:
        self._window = min(float(self.maximum), max(float(self.minimum), window))
        self.stats.lowest = min(self.stats.lowest, int(self._window))
        self.stats.highest = max(self.stats.highest, int(self._window))
        self._cond.notify_all()

    def _release(self) -> None:
        with self._cond:
            self._inflight -= 1
            self._cond.notify_all()
