"""Prefect orchestration: wiring only. The stages are plain functions in batchlake.pipeline.
What the other layers may use is ``__all__``; Prefect (~1.5 s to import) loads only when one
of them is first used."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from batchlake.flows.deploy import serve_deployments
    from batchlake.flows.sync import run_flow, sync_batches

__all__ = ["run_flow", "serve_deployments", "sync_batches"]


def __getattr__(name: str) -> Any:
    if name in ("run_flow", "sync_batches"):
        from batchlake.flows import sync

        return getattr(sync, name)
    if name == "serve_deployments":
        from batchlake.flows import deploy

        return deploy.serve_deployments
    raise AttributeError(name)
