"""Process-wide runtime switches that several threads may ask for at once."""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_LOCK = threading.Lock()
_USERS = 0
_WAS_ENABLED = True


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while many small dicts are built (a results body's
    lines, a chunk of batch objects): every generation-2 pass would rescan them all, which
    cost a third of a 200,000-line body's parse and flatten here. Counted, so that threads
    pausing it at once do not re-enable it under one another; reference counting still frees
    everything that is dropped."""
    global _USERS, _WAS_ENABLED
    with _LOCK:
        if _USERS == 0:
            _WAS_ENABLED = gc.isenabled()
            gc.disable()
        _USERS += 1
    try:
        yield
    finally:
        with _LOCK:
            _USERS -= 1
            if _USERS == 0 and _WAS_ENABLED:
                gc.enable()
