"""The task remote workers run (Dask): fetch and flatten, no database, no shared state.

It lives in its own module, holding nothing but imports, so that workers import it by name
instead of receiving a pickled copy of the flow module's state (open connections included).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from batchlake.collector import FrameCollector
from batchlake.common import Auth, Settings, from_env, parse_providers
from batchlake.gateway import GatewayClient
from batchlake.pipeline import sync_provider
from batchlake.run import ProviderResult, RunContext

SECRET_BLOCK = "bifrost-api-key"


def _api_key_from_block() -> str | None:
    try:
        from prefect.blocks.system import Secret

        value = Secret.load(SECRET_BLOCK).get()  # type: ignore[union-attr]
        return str(value) if value else None
    except Exception:  # no block registered: fine, the key is optional
        return None


def settings_from_env(db_path: str, base_url: str | None, providers: list[str] | None
                      ) -> Settings:
    """Settings for a flow or task run: environment first, then the Secret block for the key
    (the flow process and remote workers alike)."""
    s = from_env(db_path=db_path, base_url=base_url,
                 providers=parse_providers(providers) if providers else None)
    if not s.auth.api_key and s.auth.basic_user is None:
        key = _api_key_from_block()
        if key:
            s = Settings(**{**s.__dict__, "auth": Auth(api_key=key)})
    return s


def _fetch_provider(run_id: str, provider: str, base_url: str | None,
                    watermark: datetime | None, open_batches: list[tuple[Any, ...]],
                    started_at: datetime,
                    full_refresh: bool, batch_ids: list[str] | None = None
                    ) -> tuple[ProviderResult, FrameCollector]:
    """List + fetch + flatten one provider into frames the flow will load. The API key
    comes from the worker's environment or the Secret block, never from a parameter."""
    settings = settings_from_env(":remote:", base_url, [provider])
    collector = FrameCollector(watermark, open_batches)
    with GatewayClient(settings) as client:
        ctx = RunContext(settings, collector, client, run_id, started_at, full_refresh, None,
                         get_run_logger())
        result = sync_provider(ctx, provider, batch_ids=batch_ids)
    return result, collector


fetch_provider_task = task(retries=1, retry_delay_seconds=[2], cache_policy=NO_CACHE,
                           task_run_name="fetch-{provider}")(_fetch_provider)
