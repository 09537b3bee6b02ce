"""Process-wide runtime switches that several threads may ask for at once."""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

_V = TypeVar("_V")


class _SharedSetting(Generic[_V]):
    """An interpreter setting that threads (several providers' syncs) ask to change at
    once. Counted: the first one in changes it, the last one out puts back what the first
    one found, so none restores it under another."""

    def __init__(self, read: Callable[[], _V], write: Callable[[_V], None]) -> None:
        self._read, self._write = read, write
        self._lock = threading.Lock()
        self._users = 0
        self._saved: _V | None = None

    @contextlib.contextmanager
    def changed(self, change: Callable[[_V], _V]) -> Iterator[None]:
        with self._lock:
            if self._users == 0:
                self._saved = self._read()
                self._write(change(self._saved))
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0 and self._saved is not None:
                    self._write(self._saved)


def _set_gc_enabled(enabled: bool) -> None:
    if enabled:
        gc.enable()
    else:
        gc.disable()


def _set_gc_threshold(threshold: tuple[int, ...]) -> None:
    gc.set_threshold(*threshold)


_GC_ENABLED = _SharedSetting(gc.isenabled, _set_gc_enabled)
_GC_THRESHOLD: _SharedSetting[tuple[int, ...]] = _SharedSetting(gc.get_threshold,
                                                                _set_gc_threshold)
_SWITCH_INTERVAL = _SharedSetting(sys.getswitchinterval, sys.setswitchinterval)


def paused_gc() -> contextlib.AbstractContextManager[None]:
    """Pause the cyclic garbage collector while many small dicts are built (a results body's
    lines, a chunk of batch objects): every generation-2 pass would rescan them all, which
    cost a third of a 200,000-line body's parse and flatten here. Reference counting still
    frees everything that is dropped."""
    return _GC_ENABLED.changed(lambda _: False)


def fewer_gc_passes(young: int = 10_000) -> contextlib.AbstractContextManager[None]:
    """Let the youngest generation grow to ``young`` tracked objects (Python's default is 700)
    before the cyclic collector runs, then restore the thresholds. A sync makes ~150 tracked
    objects a request (httpx) and drops nearly all of them by reference counting; at 700 the
    collector ran 221 times in a 100k sync, 0.15 s with the GIL held. At 10,000: 9 times,
    0.02 s; the sync took 2.3% less wall and CPU (median of 9 paired runs), same peak RSS."""
    return _GC_THRESHOLD.changed(lambda t: (max(t[0], young), *t[1:]))


def short_gil_switches(interval_s: float = 0.0002) -> contextlib.AbstractContextManager[None]:
    """Let threads take turns on the GIL every ``interval_s`` while syncs run, then restore
    the interpreter's setting. The prefetch thread needs the GIL briefly and often (HTTP
    parsing, JSON) and, with Python's default 5 ms, waits behind flattening on the other
    thread; at 0.2 ms a sync of ~1 KB objects ran ~12% faster here (bench/). With five
    providers at once it costs ~6% more CPU for the same wall time (the wild mix)."""
    return _SWITCH_INTERVAL.changed(lambda saved: min(saved, interval_s))


@contextlib.contextmanager
def sync_runtime() -> Iterator[None]:
    """The interpreter settings a sync runs with, restored after it: short GIL switches
    and fewer passes of the cyclic collector (see each)."""
    with short_gil_switches(), fewer_gc_passes():
        yield


# polars allocates through its own jemalloc, which keeps 4 arenas per core, and every thread
# that touches polars (five providers' flatteners, their prefetchers, the loader, polars'
# pool) draws from one of them and keeps its freed pages a while. One arena holds the same
# work in less memory, no slower (docs/scaling.md, the sync's sizes). jemalloc reads its
# options when polars' library loads; polars itself sets its decay options in this variable
# then and appends what it finds there (polars/__init__.py), so it is set on importing
# batchlake, before anything imports polars. A value already in the environment wins; once
# polars is loaded it is left alone (it would not apply).
POLARS_ALLOCATOR_ENV = "_RJEM_MALLOC_CONF"
POLARS_ALLOCATOR_CONF = "narenas:1"


def configure_polars_allocator() -> None:
    if "polars" not in sys.modules:
        os.environ.setdefault(POLARS_ALLOCATOR_ENV, POLARS_ALLOCATOR_CONF)
