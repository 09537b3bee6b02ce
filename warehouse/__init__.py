"""DuckDB: opening the file, migrations, set-based merges, the results store, exports. The
.sql lives in sql/. What the other layers may use is ``__all__``."""

from batchlake.warehouse.db import (
    RESULTS_MEMORY_LIMIT,
    FileVisits,
    OnWait,
    connect,
    is_local_file,
    migrate,
    query_frame,
    reading,
)
from batchlake.warehouse.export import export_parquet
from batchlake.warehouse.inputs_store import PendingInput, pending_inputs, store_inputs
from batchlake.warehouse.load import Warehouse
from batchlake.warehouse.merge_plan import ChunkCounts
from batchlake.warehouse.publish import check_storage_version, check_target
from batchlake.warehouse.reconcile_store import (
    Checked,
    ReconcileCandidate,
    batchlake_sides,
    reconcile_candidates,
    reconcile_records,
    store_comparisons,
)
from batchlake.warehouse.results_store import (
    RESULTS_RETENTION_DAYS,
    BatchOutcome,
    PendingBatch,
    failing_batches,
    grouped_failures,
    load_results_group,
    pending_batch_counts,
    pending_batches,
    reprice_lines,
    results_backlog_by_provider,
    settle_past_retention,
)
from batchlake.warehouse.retry_store import (
    CostMeans,
    StoredBatch,
    cost_means,
    record_retry_run,
    retry_links,
    retry_writer,
    selected_batches,
    set_submit_state,
    stored_batches,
    submitted_in_flight,
    tree_attempts,
)

__all__ = [
    "RESULTS_MEMORY_LIMIT",
    "RESULTS_RETENTION_DAYS",
    "BatchOutcome",
    "Checked",
    "ChunkCounts",
    "CostMeans",
    "FileVisits",
    "OnWait",
    "PendingBatch",
    "PendingInput",
    "ReconcileCandidate",
    "StoredBatch",
    "Warehouse",
    "batchlake_sides",
    "check_storage_version",
    "check_target",
    "connect",
    "cost_means",
    "export_parquet",
    "failing_batches",
    "grouped_failures",
    "is_local_file",
    "load_results_group",
    "migrate",
    "pending_batch_counts",
    "pending_batches",
    "pending_inputs",
    "query_frame",
    "reading",
    "reconcile_candidates",
    "reconcile_records",
    "record_retry_run",
    "reprice_lines",
    "results_backlog_by_provider",
    "retry_links",
    "retry_writer",
    "selected_batches",
    "set_submit_state",
    "settle_past_retention",
    "store_comparisons",
    "store_inputs",
    "stored_batches",
    "submitted_in_flight",
    "tree_attempts",
]
