"""Which chains of retries a ``batchlake retry`` covers, read from the database.

A batch and the retry batches made from it form a chain (a tree: each retry names its source,
``batchlake_retry_of``); custom_ids stay the same along it, so a request is one request
however often it was retried. Selecting any batch of a chain selects the chain; each request
is then offered once, from its latest attempt, unless it succeeded anywhere in the chain. The
chain's first batch (its root) holds every request in its input: that is the input read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb

from batchlake.transforms import tree_depths, tree_roots
from batchlake.warehouse import (
    CostMeans,
    StoredBatch,
    cost_means,
    retry_links,
    selected_batches,
    stored_batches,
    submitted_in_flight,
)


@dataclass
class Chain:
    """One chain: its root (whose input is read) and each batch's depth and state."""

    root: StoredBatch
    depths: dict[str, int]  # batch (or in-doubt submit) -> depth; the root 0
    settled: dict[str, str]  # batch -> loaded | failed | waiting | in_flight

    def tree(self) -> list[tuple[str, str, int, str]]:
        return [(self.root.batch_id, b, d, self.settled[b]) for b, d in self.depths.items()]

    @property
    def clean(self) -> bool:
        """A lone batch whose every request has a succeeded line, as its counts say: nothing
        to retry, no need to look closer."""
        r = self.root
        return (len(self.depths) == 1 and r.settled == "loaded"
                and r.answered == r.succeeded == (r.request_total or 0) > 0)

    @property
    def lines(self) -> int:
        """Roughly how many request rows its attempts take (for reading chains in groups)."""
        return max(self.root.answered, self.root.request_total or 0, 1) * len(self.depths)


@dataclass
class RetryPlan:
    """The chains to read, those left out and why, and what the estimate starts from."""

    chains: list[Chain]
    stored: dict[str, StoredBatch]
    costs: CostMeans
    skipped: list[str] = field(default_factory=list)  # one line each
    in_flight: list[tuple[str, str, str, str]] = field(default_factory=list)


def plan_retry(con: duckdb.DuckDBPyConnection, provider: str, *, batch_ids: list[str] | None,
               since: datetime | None) -> RetryPlan:
    """The chains of ``provider``'s selected finished batches (by id, by creation since)."""
    links = retry_links(con, provider)
    selected = selected_batches(con, provider, batch_ids, since)
    ids = sorted({*selected, *(c for c, _ in links), *(p for _, p in links)})
    stored = stored_batches(con, provider, ids)
    roots = tree_roots(links, set(stored))
    by_root: dict[str, list[str]] = {}
    for b in selected:
        by_root.setdefault(roots.get(b, b), []).append(b)
    chains: list[Chain] = []
    skipped: list[str] = []
    if batch_ids:
        missing = sorted(set(batch_ids) - set(selected))
        for b in missing:
            why = ("is not finished" if b in stored else "is not in the database (run batchlake "
                   "sync, or check --provider)")
            skipped.append(f"batch {b} {why}: not retried")
    for root_id in sorted(by_root, key=lambda r: (_created(stored.get(r)), r)):
        root = stored.get(root_id)
        if root is None:
            continue
        depths = tree_depths(root_id, links)
        settled = {b: stored[b].settled if b in stored else "in_flight" for b in depths}
        unreadable = _unreadable(root)
        if unreadable:
            skipped.append(f"batch {root_id}: {unreadable}")
            continue
        chain = Chain(root, depths, settled)
        if not chain.clean:  # a chain with nothing to retry, known from its counts, is passed
            chains.append(chain)
    chain_ids = [b for c in chains for b in c.depths if b in stored]
    return RetryPlan(chains, stored, cost_means(con, provider, chain_ids), skipped,
                     submitted_in_flight(con, provider))


def _created(b: StoredBatch | None) -> datetime:
    return b.created_at if b is not None and b.created_at is not None else \
        datetime.min.replace(tzinfo=UTC)


def _unreadable(root: StoredBatch) -> str | None:
    """Why a chain cannot be retried yet (its root's outcome is not known), else None."""
    if root.settled == "in_flight":
        return "is not finished: not retried"
    if root.settled == "waiting":
        if root.results_state == "unavailable":
            return (f"its results are unavailable ({root.results_error or 'no reason given'}):"
                    " which requests failed is not known, not retried")
        return ("its results are not read yet (run batchlake results): not retried")
    return None


def needs_input(chain: Chain, attempts_failed: int, attempts_in_flight: int, *,
                force: bool, error_code: str | None) -> bool:
    """Whether a chain's input must be read: some request failed (or, with ``force``, runs
    in a retry), or the root has requests no line answered (its input holds more requests
    than its results name: a failed batch, or counts that say so; Bedrock's counts are 0,
    so its input is always read)."""
    root = chain.root
    if error_code is not None and error_code not in ("no_result_line", "batch_failed") \
            and attempts_failed == 0:
        return False
    if attempts_failed or (force and attempts_in_flight):
        return True
    if root.settled == "failed":
        return True
    total = root.request_total or 0
    return total <= 0 or root.answered < total


GROUP_LINES = 100_000  # request rows whose attempts are read at once (memory: ~25 MB)


def chain_groups(chains: list[Chain]) -> list[list[Chain]]:
    """Chains in groups whose attempts one query reads (a database open costs tens of ms,
    and so does a scan of the results: once a group, not once a chain)."""
    groups: list[list[Chain]] = []
    size = 0
    for c in chains:
        if not groups or size + c.lines > GROUP_LINES:
            groups.append([])
            size = 0
        groups[-1].append(c)
        size += c.lines
    return groups
