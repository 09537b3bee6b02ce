"""Per-route values as the command line gives them: ``list=300ms,results=600ms`` (latencies)
or ``results=12`` (in-flight caps), for ``batchlake gateway --latency/--max-inflight``."""

from __future__ import annotations

import re
from typing import Any, Literal, overload

from batchlake.simulator.route_table import ROUTE_NAMES

_DURATION = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*(ms|s)")


def _duration_s(text: str) -> float | None:
    m = _DURATION.fullmatch(text)
    if m is None:
        return None
    return float(m[1]) / (1000 if m[2] == "ms" else 1)


def _count(text: str) -> int | None:
    return int(text) if text.isdigit() and int(text) >= 1 else None


# kind -> (an example value, what a value is, its parser)
_KINDS: dict[str, tuple[str, str, Any]] = {
    "duration": ("300ms", "a duration in ms or s", _duration_s),
    "count": ("12", "a whole number, 1 or more", _count),
}


@overload
def parse_route_values(spec: str | None, option: str, kind: Literal["duration"]
                       ) -> dict[str, float]: ...
@overload
def parse_route_values(spec: str | None, option: str, kind: Literal["count"]
                       ) -> dict[str, int]: ...
def parse_route_values(spec: str | None, option: str, kind: str) -> dict[str, Any]:
    """``route=value`` pairs, comma-separated, into {route: value}: durations
    (``300ms``, ``0.3s``) in seconds, or counts. None or "" gives {}. A route must be one of
    the gateway's (list, results, retrieve); anything else raises ValueError with one line
    naming ``option``, e.g. ``--latency 'list=abc': use route=300ms,…``."""
    example, what, parse = _KINDS[kind]
    out: dict[str, Any] = {}
    for item in (spec or "").split(","):
        if not item.strip():
            continue
        route, _, text = (part.strip() for part in item.partition("="))
        value = parse(text)
        if route not in ROUTE_NAMES or value is None or route in out:
            problem = f"{route} is given twice" if route in out and value is not None else (
                f"the value is {what}, the route one of {', '.join(sorted(ROUTE_NAMES))}")
            raise ValueError(f"{option} {item.strip()!r}: use route={example},… ({problem})")
        out[route] = value
    return out
