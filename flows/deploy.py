"""Scheduled deployments: an incremental sync on a cron and a daily full reconcile.

``batchlake serve`` serves both from this process against the configured Prefect API (a local
``prefect server start`` works; Prefect's ephemeral mode cannot schedule). Parameters (providers,
DB path, gateway URL) are deployment parameters or come from the environment of the serving
process; the API key only ever from ``BIFROST_API_KEY`` or the Secret block ``bifrost-api-key``.
"""

from __future__ import annotations

from typing import Any

from prefect import serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

from batchlake.flows.sync import sync_batches

INCREMENTAL = "incremental"
RECONCILE = "daily-reconcile"


def deployments(*, db_path: str, cron: str = "*/10 * * * *",
                reconcile_cron: str = "0 3 * * *", base_url: str | None = None,
                providers: list[str] | None = None, publish_path: str | None = None,
                publish_storage_version: str | None = None) -> list[Any]:
    params: dict[str, Any] = {"db_path": db_path}
    if publish_path:
        params["publish_path"] = publish_path
        params["publish_storage_version"] = publish_storage_version
    if base_url:
        params["base_url"] = base_url
    if providers:
        params["providers"] = providers
    # One run at a time per deployment; runs of the two deployments on one DB file wait for
    # each other on the file lock (and say so if it takes longer than lock_timeout_s).
    one_at_a_time = ConcurrencyLimitConfig(limit=1,
                                           collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)
    return [
        sync_batches.to_deployment(
            name=INCREMENTAL, cron=cron, parameters={**params, "full_refresh": False},
            concurrency_limit=one_at_a_time, tags=["batchlake"],
            description="Incremental sync: new and changed batches since the watermark."),
        sync_batches.to_deployment(
            name=RECONCILE, cron=reconcile_cron, parameters={**params, "full_refresh": True},
            concurrency_limit=one_at_a_time, tags=["batchlake"],
            description="Full reconcile: list everything once a day."),
    ]


def serve_deployments(*, db_path: str, cron: str, reconcile_cron: str,
                      base_url: str | None = None, providers: list[str] | None = None,
                      publish_path: str | None = None,
                      publish_storage_version: str | None = None) -> None:
    serve(*deployments(db_path=db_path, cron=cron, reconcile_cron=reconcile_cron,
                       base_url=base_url, providers=providers, publish_path=publish_path,
                       publish_storage_version=publish_storage_version))
