"""Telling a results route the gateway does not have from batches that have no results
(``RouteWatch``), for the results stage (batchlake/results_stage.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from batchlake.common import GatewayError
from batchlake.run import RunContext
from batchlake.warehouse import BatchOutcome


def retrieved(ctx: RunContext, provider: str, batch_id: str, *, nested: bool = False) -> Any:
    """``GET /v1/batches/{id}``'s object, or None when the gateway does not give it
    (``nested``: see ``GatewayClient.retrieve_batch``)."""
    try:
        return ctx.client.retrieve_batch(provider, batch_id, nested=nested)
    except GatewayError:
        return None


@dataclass
class _Suspects:
    """404s that may say "no such route" rather than "no such results" (see RouteWatch)."""

    outcomes: list[BatchOutcome] = field(default_factory=list)
    template: str | None = None


class RouteWatch:
    """Tells a results route the gateway does not have from batches that have no results, so
    that a missing route costs a few requests a run, not one per batch, and settles nothing.

    - A 404 or 405 whose body is no Bifrost error body (a router's or proxy's own answer),
      ``ROUTE_MISSING_AFTER`` times in a row: the gateway has no results route. Every
      provider stops for this run.
    - Bifrost-bodied 404s, ``SAME_404_AFTER`` batches of a provider in a row, with one message
      (the batch id aside), for batches the gateway does know (this run's listing showed
      them all, or one retrieve finds one) or naming the route itself ("Cannot GET
      /v1/batches/…/results"): the gateway answers 404 for that provider's results whatever
      the batch. It stops. Batches that are really gone (neither listed now nor found by id,
      "batch … not found") are settled unavailable, each once.

    Suspect outcomes wait here, unrecorded: if the pattern breaks (a batch loads, another
    error), they were real and go to the load group; if it holds, they are dropped, so those
    batches are asked again at a later run."""

    ROUTE_MISSING_AFTER = 3
    SAME_404_AFTER = 5

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.missing: str | None = None  # the gateway-wide finding, one line
        self.stopped: dict[str, str] = {}  # provider -> the finding, one line
        self._plain = _Suspects()
        self._same: dict[str, _Suspects] = {}

    def stops(self, provider: str) -> bool:
        return self.missing is not None or provider in self.stopped

    def take(self, o: BatchOutcome) -> list[BatchOutcome]:
        """The outcomes to record now (``o`` and suspects it clears), in order."""
        if self.stops(o.provider):
            return [] if o.route_suspect or o.same_suspect else [o]
        if o.route_suspect:
            self._plain.outcomes.append(o)
            if len(self._plain.outcomes) >= self.ROUTE_MISSING_AFTER:
                self.missing = (f"the gateway has no results route: GET /v1/batches/{{id}}/"
                                f"results answered {o.status} without a Bifrost error body "
                                f"for {len(self._plain.outcomes)} batches in a row "
                                f"({o.error}); results are asked again at the next run")
                self._plain.outcomes.clear()
            return []
        out = self._plain.outcomes
        self._plain = _Suspects()
        same = self._same.setdefault(o.provider, _Suspects())
        if o.same_suspect:
            template = (o.error or "").replace(o.batch_id, "{id}")
            if same.template not in (None, template):
                out, same.outcomes = out + same.outcomes, []
            same.template = template
            same.outcomes.append(o)
            if len(same.outcomes) >= self.SAME_404_AFTER:
                if (all(s.listed_now for s in same.outcomes) or "/results" in template
                        or retrieved(self.ctx, o.provider, o.batch_id) is not None):
                    self.stopped[o.provider] = (
                        f"the gateway answers 404 for {o.provider}'s results whatever the "
                        f"batch ({len(same.outcomes)} in a row, of batches it knows: "
                        f"{o.error}); results are asked again at the next run")
                    same.outcomes = []
                else:
                    out, same.outcomes = out + same.outcomes, []
            return out
        out, same.outcomes, same.template = out + same.outcomes + [o], [], None
        return out

    def drain(self) -> list[BatchOutcome]:
        """At the end: suspects that never made a pattern were real answers."""
        out = self._plain.outcomes
        for same in self._same.values():
            out += same.outcomes
        self._plain, self._same = _Suspects(), {}
        return out
