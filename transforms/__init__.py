"""Pure polars transforms: raw gateway JSON in, typed frames out. No I/O here. What the
other layers may use is ``__all__``."""

from batchlake.transforms.derive import STATUS_VOCABULARY, TERMINAL_STATUSES
from batchlake.transforms.flatten import FlatFrames, flatten_objects
from batchlake.transforms.gateway_costs import (
    RECONCILE_STATUSES,
    BatchlakeModel,
    BatchlakeSide,
    Comparison,
    GatewayCost,
    ModelShare,
    Tolerance,
    compare,
    cost_log_id,
    legacy_cost_log_id,
    parse_cost_row,
    pick_cost_row,
)
from batchlake.transforms.prices import (
    ShippedPrices,
    no_shipped_prices,
    parse_price_csv,
    shipped_prices,
)
from batchlake.transforms.redact import redact, scrub_text
from batchlake.transforms.result_lines import flatten_results
from batchlake.transforms.schema import (
    BATCH_RESULTS,
    BATCH_SNAPSHOTS,
    BATCHES,
    GATEWAY_BATCH_COSTS,
    REJECTS,
    RESULT_LINE_COLUMNS,
    ROW_KEY_SQL,
    STAGED_BATCH_COLUMNS,
    TABLES,
    create_table_sql,
    markdown_docs,
)
from batchlake.transforms.typed import (
    ListPage,
    NotTyped,
    decode_page,
    flatten_records,
    oldest_created,
    record_ids,
)

__all__ = [
    "BATCHES",
    "BATCH_RESULTS",
    "BATCH_SNAPSHOTS",
    "GATEWAY_BATCH_COSTS",
    "RECONCILE_STATUSES",
    "REJECTS",
    "RESULT_LINE_COLUMNS",
    "ROW_KEY_SQL",
    "STAGED_BATCH_COLUMNS",
    "STATUS_VOCABULARY",
    "TABLES",
    "TERMINAL_STATUSES",
    "BatchlakeModel",
    "BatchlakeSide",
    "Comparison",
    "FlatFrames",
    "GatewayCost",
    "ListPage",
    "ModelShare",
    "NotTyped",
    "ShippedPrices",
    "Tolerance",
    "compare",
    "cost_log_id",
    "create_table_sql",
    "decode_page",
    "flatten_objects",
    "flatten_records",
    "flatten_results",
    "legacy_cost_log_id",
    "markdown_docs",
    "no_shipped_prices",
    "oldest_created",
    "parse_cost_row",
    "parse_price_csv",
    "pick_cost_row",
    "record_ids",
    "redact",
    "scrub_text",
    "shipped_prices",
]
