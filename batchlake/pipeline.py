"""The sync as plain functions: the orchestration that composes the stages.

``sync`` runs the batch-object stage (batchlake/batch_stage.py) for every provider at once,
one thread each, through ``sync_provider``; meanwhile the results stage
(batchlake/results_stage.py, ``read_results``) reads the results of each provider whose
batches are committed, as providers end (a ``ProviderFeed``), so a slow listing holds back
only its own provider's results; each provider's outcome is recorded in ``sync_runs``; then
the snapshot is published (batchlake/publishing.py). ``read_stored_results`` (``batchlake
results``) and ``reprice_stored`` (``batchlake reprice``) run one stage each. The Prefect
flow (``flows/``) and the CLI's direct mode both call these; nothing here knows about
Prefect.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from batchlake.batch_stage import run_batch_stage
from batchlake.common import BatchlakeError, Settings, sync_runtime
from batchlake.gateway import GatewayClient
from batchlake.pricing import PriceCache
from batchlake.publishing import publish_snapshot
from batchlake.results_stage import run_results_stage
from batchlake.run import (
    OnProgress,
    ProviderFailed,
    ProviderFeed,
    ProviderResult,
    RunContext,
    SyncReport,
    log,
    new_run_id,
    one_line,
    record_finish,
)
from batchlake.warehouse import Warehouse


def sync_provider(ctx: RunContext, provider: str, *, batch_ids: list[str] | None = None,
                  raise_errors: bool = False) -> ProviderResult:
    """Sync one provider's batch objects; failures are recorded in sync_runs (and re-raised
    if asked). Its results are read by ``read_results`` once its batches are committed."""
    wh, settings = ctx.warehouse, ctx.settings
    mode = "ids" if batch_ids else ("full" if ctx.full_refresh else "incremental")
    watermark = None if mode != "incremental" else wh.watermark(provider)
    result = ProviderResult(provider, mode=mode, watermark_used=watermark)
    wh.start_run(ctx.run_id, provider, mode, ctx.started_at, watermark)
    try:
        run_batch_stage(ctx, provider, result, batch_ids=batch_ids)
        result.status = "ok"
    except BatchlakeError as e:
        result.status, result.error = "failed", one_line(str(e), settings)
    except Exception as e:  # unexpected: keep the other providers going, say what it was
        ctx.logger.debug("provider %s crashed", provider, exc_info=True)
        result.status = "failed"
        result.error = one_line(f"{type(e).__name__}: {e}", settings)
    finally:
        record_finish(wh, ctx.run_id, result)
    level = logging.INFO if result.status == "ok" else logging.WARNING
    ctx.logger.log(level, "%s: %s %s", provider, result.status,
                   result.error or _summary(result))
    if result.status != "ok" and raise_errors:
        raise ProviderFailed(f"{provider}: {result.error}")
    return result


def read_results(ctx: RunContext, results: ProviderFeed | list[ProviderResult], *,
                 batch_ids: list[str] | None = None, refetch: bool = False,
                 budget_s: float | None = None,
                 on_progress: Callable[[int, int], None] | None = None) -> None:
    """The results stage, over the providers whose sync went well, each once its batch
    tables are committed (``results`` is a feed of providers as they end, or a list of
    providers that have all ended): newest finished first, within the results budget; each
    provider's sync_runs row gets its counts. A failure of the stage itself (the database)
    fails the providers it had taken, with the reason."""
    if not ctx.settings.results:
        return
    # the stage takes only the providers whose sync went well
    feed = results if isinstance(results, ProviderFeed) else ProviderFeed.of(results)
    joined: dict[str, ProviderResult] = {}
    try:
        run_results_stage(ctx, feed, joined, batch_ids=batch_ids, refetch=refetch,
                          budget_s=budget_s, on_progress=on_progress)
    except BatchlakeError as e:
        for r in joined.values():
            r.status, r.error = "failed", one_line(str(e), ctx.settings)
    except Exception as e:  # unexpected: say what it was, keep what was committed
        ctx.logger.debug("the results stage crashed", exc_info=True)
        for r in joined.values():
            r.status = "failed"
            r.error = one_line(f"{type(e).__name__}: {e}", ctx.settings)
    finally:
        for r in joined.values():
            record_finish(ctx.warehouse, ctx.run_id, r)
    window = ctx.client.limit.stats
    if window.answered:
        ctx.logger.debug("gateway window: %d-%d requests, %d answers, %d 429, %d failed, "
                         "%d decreases", window.lowest, window.highest, window.answered,
                         window.overloaded, window.failed, window.decreases)


def _summary(r: ProviderResult) -> str:
    c = r.counts
    return (f"{r.fetched} fetched ({r.pages} pages, {r.refetched} by id): {c.inserted} new, "
            f"{c.updated} changed, {c.unchanged} unchanged, {c.rejected} rejected")


def sync(
    settings: Settings,
    *,
    providers: tuple[str, ...] | None = None,
    batch_ids: list[str] | None = None,
    full_refresh: bool = False,
    on_progress: OnProgress | None = None,
    logger: logging.Logger | logging.LoggerAdapter[Any] = log,
    run_id: str | None = None,
    refetch_results: bool = False,
    clock: datetime | None = None,
) -> SyncReport:
    """Run one sync of ``providers`` (default: settings.providers) into settings.db_path.
    ``clock`` is the run's time (default: now): tests and benchmarks simulate a schedule."""
    provs = providers or settings.providers
    started = clock or datetime.now(UTC)
    rid = run_id or new_run_id()
    prices = PriceCache(settings)
    if settings.results:
        prices.check()  # a bad prices file is one line before any work is done
    with sync_runtime(), \
            Warehouse(settings.db_path, lock_timeout_s=settings.lock_timeout_s,
                      group_rows=settings.chunk_size) as wh, \
            GatewayClient(settings) as client:
        ctx = RunContext(settings, wh, client, rid, started, full_refresh, on_progress, logger,
                         prices, refetch_results, providers_at_once=len(provs))
        feed = ProviderFeed(len(provs))

        def one(provider: str) -> ProviderResult:
            result = ProviderResult(provider, status="failed", error="interrupted")
            try:
                result = sync_provider(ctx, provider, batch_ids=batch_ids)
            finally:  # the results stage waits for every provider: each ends, whatever
                feed.add(result)
            return result

        with ThreadPoolExecutor(max_workers=max(1, len(provs)),
                                thread_name_prefix="provider") as pool:
            futures = [pool.submit(one, p) for p in provs]
            # each provider's results once its batches are committed, while others list
            read_results(ctx, feed, batch_ids=batch_ids, refetch=refetch_results)
            results = [f.result() for f in futures]
        report = SyncReport(rid, started, results)
        report.published = publish_snapshot(wh, settings, report)
    return report


def read_stored_results(settings: Settings, *, refetch: bool = False,
                      budget_s: float = 0.0,
                      on_progress: Callable[[int, int], None] | None = None,
                      logger: logging.Logger | logging.LoggerAdapter[Any] = log) -> SyncReport:
    """Read (and price) the results of the finished batches already stored, without listing
    batches: ``batchlake results``, which drains the backlog (``budget_s`` 0: no limit).
    Recorded in sync_runs with mode 'results'."""
    started = datetime.now(UTC)
    rid = new_run_id()
    prices = PriceCache(settings)
    prices.check()
    with sync_runtime(), \
            Warehouse(settings.db_path, lock_timeout_s=settings.lock_timeout_s) as wh, \
            GatewayClient(settings) as client:
        ctx = RunContext(settings, wh, client, rid, started, logger=logger, prices=prices,
                         refetch_results=refetch)
        results = [ProviderResult(provider, mode="results", status="ok")
                   for provider in settings.providers]
        for r in results:
            wh.start_run(rid, r.provider, "results", started, None)
        read_results(ctx, results, refetch=refetch, budget_s=budget_s,
                     on_progress=on_progress)
    return SyncReport(rid, started, results)


def reprice_stored(settings: Settings) -> tuple[int, int]:
    """Recompute every stored line's cost from the prices in force (``batchlake reprice``):
    not a single request. Returns (lines, unpriced lines)."""
    from batchlake.warehouse import reprice_lines

    prices = PriceCache(settings)
    prices.check()
    with Warehouse(settings.db_path, lock_timeout_s=settings.lock_timeout_s) as wh:
        return reprice_lines(wh, prices)
