"""The task remote workers run (Dask): fetch and flatten, no database, no shared state.

It lives in its own module, holding nothing but imports, so that workers import it by name
instead of receiving a pickled copy of the flow module's state (open connections included).
"""

from __future__ import annotations

from datetime import datetime

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from batchlake.pipeline import FrameCollector, ProviderResult, RunContext, sync_provider
from batchlake.settings import Settings, from_env, parse_providers
from gateway import GatewayClient


def _fetch_provider(run_id: str, provider: str, base_url: str | None,
                    watermark: datetime | None, open_ids: list[str], started_at: datetime,
                    full_refresh: bool, batch_ids: list[str] | None = None
                    ) -> tuple[ProviderResult, FrameCollector]:
    """List + fetch + flatten one provider into frames the flow will load. The API key
    comes from the worker's environment (BIFROST_API_KEY), never from a parameter."""
    settings: Settings = from_env(base_url=base_url, providers=parse_providers([provider]))
    collector = FrameCollector(watermark, open_ids)
    with GatewayClient(settings) as client:
        ctx = RunContext(settings, collector, client, run_id, started_at, full_refresh, None,
                         get_run_logger())
        result = sync_provider(ctx, provider, batch_ids=batch_ids)
    return result, collector


fetch_provider_task = task(retries=1, retry_delay_seconds=[2], cache_policy=NO_CACHE,
                           task_run_name="fetch-{provider}")(_fetch_provider)
