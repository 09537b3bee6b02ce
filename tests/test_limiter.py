"""The gateway client's adaptive window on a fake clock: how it grows, when it shrinks, how
a 429's Retry-After holds every new request back, and its bounds. The window over real HTTP
is tests/test_results_adaptive.py's."""

from __future__ import annotations

import threading
from collections import deque

import pytest

from batchlake.gateway import AdaptiveLimit, Slot


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fill(limit: AdaptiveLimit) -> list[Slot]:
    """As many slots as the window lets in now."""
    slots = []
    while (slot := limit.acquire(timeout=0)) is not None:
        slots.append(slot)
    return slots


class Busy:
    """Keeps the window full, as the results stage does with a backlog: a request goes out
    as soon as one ends. Requests are answered oldest first."""

    def __init__(self, limit: AdaptiveLimit) -> None:
        self.limit = limit
        self.out: deque[Slot] = deque(fill(limit))

    def answer(self, n: int, seconds: float, route: str = "results") -> int:
        for _ in range(n):
            slot = self.out.popleft()
            slot.answered(route, seconds)
            slot.release()
            self.out.extend(fill(self.limit))
        return self.limit.window

    def round_trips(self, n: int, seconds: float) -> int:
        """Answer ``n`` windows' worth of requests (a round trip each)."""
        for _ in range(n):
            self.answer(len(self.out), seconds)
        return self.limit.window


def test_slow_start_doubles_the_window_every_round_trip_up_to_its_maximum() -> None:
    limit = AdaptiveLimit(initial=2, maximum=40, clock=Clock())
    busy = Busy(limit)
    assert [busy.round_trips(1, 0.6) for _ in range(6)] == [4, 8, 16, 32, 40, 40]
    assert limit.stats.decreases == 0 and limit.stats.highest == 40


def test_a_window_nobody_fills_does_not_grow() -> None:
    limit = AdaptiveLimit(initial=8, maximum=64, clock=Clock())
    for _ in range(50):  # one request at a time: the window is not what limits anybody
        slot = limit.acquire(timeout=0)
        assert slot is not None
        slot.answered("retrieve", 0.2)
        slot.release()
    assert limit.window == 8


def test_a_429_shrinks_the_window_once_a_round_trip_and_holds_requests_for_retry_after(
        ) -> None:
    clock = Clock()
    limit = AdaptiveLimit(initial=16, maximum=64, clock=clock)
    slots = fill(limit)
    assert len(slots) == 16
    # the gateway takes 12: the four past its cap come back 429, with Retry-After 1 s
    for slot in slots[12:]:
        slot.overloaded(1.0)
        slot.release()
    # one decrease for the round trip, not four: to 0.7 x the 13 in flight when refused
    assert limit.window == 9
    assert limit.stats.overloaded == 4 and limit.stats.decreases == 1
    for slot in slots[:12]:  # answers to requests sent before the decrease: no growth
        slot.answered("results", 0.6)
        slot.release()
    assert limit.window == 9
    assert limit.acquire(timeout=0) is None  # nothing starts before the Retry-After
    assert limit.paused_for() == pytest.approx(1.0)
    clock.now += 1.0
    assert len(fill(limit)) == 9


def test_near_a_ceiling_that_drew_a_429_the_window_probes_slowly() -> None:
    limit = AdaptiveLimit(initial=13, maximum=64, clock=Clock())
    slots = fill(limit)
    slots[-1].overloaded(None)  # the 13th in flight was refused: the gateway takes 12
    for slot in slots:
        slot.release()
    assert limit.window == 9
    busy = Busy(limit)
    trips = 0
    while limit.window < 13 and trips < 100:
        busy.round_trips(1, 0.6)
        trips += 1
    # 9 -> 11.7 at a step a round trip, then to 13 at a step per 8 round trips; without
    # the ceiling it would take 4
    assert 10 <= trips <= 16, trips


def test_failures_shrink_the_window_and_end_slow_start() -> None:
    limit = AdaptiveLimit(initial=10, maximum=64, clock=Clock())
    for slot in fill(limit):
        slot.failed()
        slot.release()
    assert limit.window == 8 and limit.stats.decreases == 1
    busy = Busy(limit)
    assert [busy.round_trips(1, 0.6) for _ in range(4)] == [8, 9, 10, 11]  # +1, not x2


def test_rising_time_to_headers_shrinks_the_window_but_one_slow_answer_does_not() -> None:
    limit = AdaptiveLimit(initial=16, maximum=64, clock=Clock())
    busy = Busy(limit)
    assert busy.round_trips(1, 0.6) == 32
    busy.answer(1, 6.0)  # one big body, ten times the floor
    assert limit.stats.decreases == 0
    busy.answer(8, 1.8)  # then every answer takes three times the floor: queueing
    assert limit.stats.decreases == 1 and limit.window < 32


def test_each_route_is_measured_against_its_own_floor() -> None:
    limit = AdaptiveLimit(initial=4, maximum=64, clock=Clock())
    busy = Busy(limit)
    for i in range(200):  # fast retrieves and slow results bodies, mixed: no queueing
        busy.answer(1, *(("retrieve", 0.2)[::-1] if i % 2 else (0.6, "results")))
    assert limit.stats.decreases == 0 and limit.window == 64


def test_the_window_stays_within_its_bounds() -> None:
    limit = AdaptiveLimit(initial=500, maximum=6, clock=Clock())
    assert limit.window == 6
    for _ in range(30):
        slots = fill(limit)
        for slot in slots:
            slot.overloaded(None)
            slot.release()
    assert limit.window == 1  # at least one request, always
    with pytest.raises(ValueError):
        AdaptiveLimit(minimum=0)


def test_a_nested_request_gets_in_at_once_and_counts_in_flight() -> None:
    limit = AdaptiveLimit(initial=1, maximum=8, clock=Clock())
    holder = limit.acquire(timeout=0)
    assert holder is not None and limit.acquire(timeout=0) is None
    nested = limit.acquire_nested()  # its holder's own slot would never come free
    assert limit.inflight == 2
    nested.release()
    nested.release()  # idempotent
    holder.release()
    assert limit.inflight == 0


def test_a_waiting_acquire_wakes_when_a_slot_comes_free() -> None:
    limit = AdaptiveLimit(initial=1, maximum=1)
    held = limit.acquire()
    assert held is not None
    got: list[Slot | None] = []
    waiter = threading.Thread(target=lambda: got.append(limit.acquire(timeout=60)))
    waiter.start()
    held.release()
    waiter.join(timeout=60)
    assert got and got[0] is not None
