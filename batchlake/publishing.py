"""Publishing: after a run's last commit, write the read-only snapshot readers open
(warehouse/publish.py does the writing; this decides whether the run earned one)."""

from __future__ import annotations

from batchlake.common import Settings
from batchlake.run import SyncReport
from batchlake.warehouse import Warehouse


def publish_snapshot(wh: Warehouse, settings: Settings, report: SyncReport) -> str | None:
    """Publish the read-only snapshot once every provider's chunks are committed. A run in
    which every provider failed changed nothing worth a new snapshot."""
    if not settings.publish_path or report.all_failed:
        return None
    return str(wh.publish(settings.publish_path, settings.publish_storage_version))
