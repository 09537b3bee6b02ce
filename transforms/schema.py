"""The one schema definition of batchlake's tables.

Every column of every table is declared here once: the flattener reads the source paths and
kinds to walk gateway JSON, the polars dtypes come from the kinds, the DuckDB DDL in ``sql/`` is
rendered from the same list, and ``batchlake schema`` prints the docs from it. Adding a column
here adds it everywhere; the migration runner adds missing columns to existing tables, so the
schema evolves without losing data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

import polars as pl

Kind = Literal["str", "int", "float", "bool", "ts", "json"]

POLARS_TYPES: dict[Kind, pl.DataType] = {
    "str": pl.String(),
    "int": pl.Int64(),
    "float": pl.Float64(),
    "bool": pl.Boolean(),
    "ts": pl.Datetime("us", "UTC"),
    "json": pl.String(),
}
DUCKDB_TYPES: dict[Kind, str] = {
    "str": "VARCHAR",
    "int": "BIGINT",
    "float": "DOUBLE",
    "bool": "BOOLEAN",
    "ts": "TIMESTAMPTZ",
    "json": "JSON",
}


@dataclass(frozen=True)
class Column:
    """One column. ``source`` is the JSON path it is read from; ``None`` means derived."""

    name: str
    kind: Kind
    doc: str
    source: tuple[str, ...] | None = None
    tracked: bool = True  # part of the content hash: a change here is a change of the batch
    snapshot: bool = False  # copied into batch_snapshots
    not_null: bool = False

    @property
    def polars_type(self) -> pl.DataType:
        return POLARS_TYPES[self.kind]

    @property
    def duckdb_type(self) -> str:
        return DUCKDB_TYPES[self.kind]


@dataclass(frozen=True)
class Table:
    name: str
    doc: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    # False: the key is kept unique by the merge, not by an index (big tables: an ART index
    # costs memory that grows with the table, and DuckDB's joins do not use it).
    indexed: bool = True

    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def polars_schema(self) -> dict[str, pl.DataType]:
        return {c.name: c.polars_type for c in self.columns}


def _c(name: str, kind: Kind, doc: str, *src: str, **kw: bool) -> Column:
    return Column(name, kind, doc, tuple(src) if src else None, **kw)


TIMESTAMP_FIELDS: tuple[str, ...] = (
    "created_at",
    "expires_at",
    "in_progress_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
    "archived_at",
)
COUNT_FIELDS: tuple[str, ...] = (
    "total",
    "completed",
    "failed",
    "succeeded",
    "expired",
    "canceled",
    "pending",
)
# Counts Bifrost always sends; the others are omitted when zero, so absent means 0.
ALWAYS_SENT_COUNTS: tuple[str, ...] = ("total", "completed", "failed")

_IDENTITY = (
    _c("provider", "str", "Gateway provider the batch was listed under.", not_null=True),
    _c("batch_id", "str", "Provider batch id (OpenAI batch_…, Gemini batches/…, Bedrock ARN).",
       "id", not_null=True),
)

_BATCH_FIELDS = (
    _c("object", "str", "Object type, usually 'batch'.", "object"),
    _c("display_name", "str", "Vertex display name.", "display_name"),
    _c("endpoint", "str", "Endpoint the batch targets, e.g. /v1/chat/completions.", "endpoint"),
    _c("input_file_id", "str", "Input file id (Bedrock: S3 URI).", "input_file_id"),
    _c("completion_window", "str", "Requested completion window, e.g. '24h'.",
       "completion_window"),
    _c("status", "str", "Status exactly as the gateway sent it.", "status", snapshot=True,
       not_null=True),
    _c("processing_status", "str", "Anthropic's raw processing_status.", "processing_status",
       snapshot=True),
    _c("status_norm", "str", "Status in one vocabulary across providers (see README).",
       snapshot=True, not_null=True),
    _c("is_terminal", "bool", "True once the batch can no longer change.", snapshot=True,
       not_null=True),
    *(
        _c(f"request_{n}", "int", f"request_counts.{n}" + (
            "" if n in ALWAYS_SENT_COUNTS else " (omitted by Bifrost when 0, stored as 0)"),
           "request_counts", n, snapshot=True)
        for n in COUNT_FIELDS
    ),
    *(
        _c(t, "ts", f"{t} (unix seconds from the gateway, stored as UTC).", t, snapshot=True)
        for t in TIMESTAMP_FIELDS
    ),
    _c("output_file_id", "str", "Output file id.", "output_file_id"),
    _c("error_file_id", "str", "Error file id.", "error_file_id"),
    _c("results_url", "str", "Anthropic results URL.", "results_url"),
    _c("operation_name", "str", "Gemini operation name.", "operation_name"),
    _c("done", "bool", "Gemini: the long-running operation is done.", "done", snapshot=True),
    _c("progress", "int", "Gemini percentage progress.", "progress", snapshot=True),
    _c("input_blob", "str", "Azure input blob.", "input_blob"),
    _c("output_blob", "str", "Azure output blob.", "output_blob"),
    _c("error_blob", "str", "Azure error blob.", "error_blob"),
    _c("errors_object", "str", "errors.object, usually 'list'.", "errors", "object"),
    _c("errors_count", "int", "Number of entries in errors.data (rows in batch_errors).",
       snapshot=True),
    _c("errors_json", "json", "errors.data as JSON (source of batch_errors).", tracked=True),
    _c("metadata", "json", "metadata as a JSON object (also in batch_metadata).", "metadata"),
)

_EXTRA_FIELDS = (
    _c("request_type", "str", "extra_fields.request_type (batch_list / batch_retrieve).",
       "extra_fields", "request_type", tracked=False),
    _c("gateway_provider", "str", "extra_fields.provider.", "extra_fields", "provider",
       tracked=False),
    _c("model_requested", "str", "extra_fields.model_requested (or original_model_requested).",
       "extra_fields", "model_requested", tracked=False),
    _c("model_deployment", "str", "extra_fields.model_deployment (or resolved_model_used).",
       "extra_fields", "model_deployment", tracked=False),
    _c("latency_ms", "int", "extra_fields.latency: gateway latency of the call, ms.",
       "extra_fields", "latency", tracked=False, snapshot=True),
    _c("chunk_index", "int", "extra_fields.chunk_index.", "extra_fields", "chunk_index",
       tracked=False),
    *(
        _c(f"cache_{n}" if not n.startswith("cache_") else n, cast(Kind, k),
           f"extra_fields.cache_debug.{n}.",
           "extra_fields", "cache_debug", n, tracked=False,
           snapshot=n in ("cache_hit", "hit_type", "similarity", "threshold"))
        for n, k in (
            ("cache_hit", "bool"),
            ("cache_id", "str"),
            ("hit_type", "str"),
            ("requested_provider", "str"),
            ("requested_model", "str"),
            ("provider_used", "str"),
            ("model_used", "str"),
            ("input_tokens", "int"),
            ("threshold", "float"),
            ("similarity", "float"),
            ("cache_hit_latency", "int"),
        )
    ),
    _c("raw_request", "json", "extra_fields.raw_request, redacted; only with --store-raw.",
       tracked=False),
    _c("raw_response", "json", "extra_fields.raw_response, redacted; only with --store-raw.",
       tracked=False),
    _c("extras", "json", "Fields this version does not know, kept verbatim (schema evolution).",
       tracked=False),
)

_DERIVED = (
    _c("completion_window_s", "int", "completion_window parsed to seconds ('24h' -> 86400)."),
    _c("deadline_at", "ts", "created_at + completion_window_s."),
    _c("queue_s", "float", "Seconds from created_at to in_progress_at."),
    _c("processing_s", "float", "Seconds from in_progress_at to completed/failed/ended."),
    _c("total_s", "float", "Seconds from created_at to the terminal timestamp."),
    _c("is_overdue", "bool", "Non-terminal and past deadline_at or expires_at, as of the sync "
       "(time-dependent, so not part of the content hash; v_overdue is always current).",
       tracked=False),
    _c("content_hash", "str", "md5 of the tracked columns; a new value is a change.",
       tracked=False, snapshot=True),
    _c("row_key", "int", "Lookup key of the merge: 63 bits of md5(provider, batch_id). A "
       "match on it is confirmed on provider and batch_id, so a collision costs nothing.",
       tracked=False),
)

# The one definition of row_key (rendered into the merge and the migration that fills it in
# older files). md5, not DuckDB's hash(): stored keys must stay valid across DuckDB releases.
ROW_KEY_SQL = ("CAST(md5_number_lower(provider || chr(0) || batch_id) & 9223372036854775807 "
               "AS BIGINT)")

_BOOKKEEPING = (
    _c("first_seen_at", "ts", "When batchlake first stored this batch.", tracked=False),
    _c("last_seen_at", "ts", "Start of the last sync that saw this batch open, or saw it change. "
       "A terminal batch is final and not re-confirmed: it keeps the sync that saw it "
       "become (or first saw it) terminal.", tracked=False),
    _c("last_changed_at", "ts", "Start of the last sync that saw it change.", tracked=False),
    _c("last_run_id", "str", "Run id of the sync of last_seen_at.", tracked=False),
)

BATCHES = Table(
    "batches",
    "One row per batch: the latest state, flat.",
    (*_IDENTITY, *_BATCH_FIELDS, *_EXTRA_FIELDS, *_DERIVED, *_BOOKKEEPING),
    ("provider", "batch_id"),
    indexed=False,
)

BATCH_ERRORS = Table(
    "batch_errors",
    "One row per errors.data[] entry of a batch (replaced when the errors change).",
    (
        *_IDENTITY,
        _c("idx", "int", "Position in errors.data.", not_null=True),
        _c("code", "str", "Error code.", "code"),
        _c("message", "str", "Error message.", "message"),
        _c("param", "str", "Parameter the error refers to.", "param"),
        _c("line", "int", "Input file line.", "line"),
    ),
    ("provider", "batch_id", "idx"),
    indexed=False,
)

BATCH_METADATA = Table(
    "batch_metadata",
    "One row per metadata key of a batch, for GROUP BY key in SQL.",
    (
        *_IDENTITY,
        _c("key", "str", "Metadata key.", not_null=True),
        _c("value", "str", "Metadata value.", tracked=False),
    ),
    ("provider", "batch_id", "key"),
    indexed=False,
)

_SNAP_RUN = (
    _c("observed_at", "ts", "Start of the sync that observed the change.", not_null=True),
    _c("run_id", "str", "Sync run id.", not_null=True),
)

BATCH_SNAPSHOTS = Table(
    "batch_snapshots",
    "One row per observed change of a batch: its history. Append-only and unique on "
    "(provider, batch_id, observed_at) by construction; no index, so appends stay cheap.",
    (*_IDENTITY, *_SNAP_RUN, *(c for c in BATCHES.columns if c.snapshot)),
)

SYNC_RUNS = Table(
    "sync_runs",
    "One row per provider per sync run.",
    (
        _c("run_id", "str", "Sync run id (shared by the run's providers).", not_null=True),
        _c("provider", "str", "Provider.", not_null=True),
        _c("mode", "str", "'incremental', 'full' or 'ids'."),
        _c("started_at", "ts", "Start."),
        _c("finished_at", "ts", "End (NULL while running or after a crash)."),
        _c("status", "str", "'running', 'ok' or 'failed'."),
        _c("watermark_used", "ts", "created_at watermark the listing stopped at (incremental)."),
        _c("pages", "int", "List pages read."),
        _c("fetched", "int", "Objects fetched (list + by id)."),
        _c("refetched_by_id", "int", "Known non-terminal batches re-fetched by id."),
        _c("inserted", "int", "New batches."),
        _c("updated", "int", "Changed batches."),
        _c("unchanged", "int", "Batches seen without change."),
        _c("rejected", "int", "Objects or pages sent to rejects."),
        _c("snapshots_appended", "int", "Rows appended to batch_snapshots."),
        _c("deferred", "int", "Open batches not re-read this run: backed off, being long "
           "past their deadline (batchlake/planner.py)."),
        _c("plan", "str", "The request plan taken: window, window+by-id, list-to-oldest or "
           "full, with the by-id and listing estimates."),
        _c("results_batches", "int", "Finished batches whose results were loaded."),
        _c("result_lines", "int", "Result lines stored."),
        _c("results_failed", "int", "Finished batches whose results could not be read (see "
           "batch_results_state)."),
        _c("warnings", "str", "Pagination anomalies seen (repeated cursor, duplicates…)."),
        _c("error_message", "str", "Why the provider failed (one line), else NULL."),
        _c("results_backlog", "int", "Finished batches whose results this run left for a later "
           "one (its results budget spent, or the gateway's results route missing)."),
    ),
    ("run_id", "provider"),
)

REJECTS = Table(
    "rejects",
    "Objects or pages that could not become rows, with the reason and the payload.",
    (
        _c("run_id", "str", "Sync run id.", not_null=True),
        _c("provider", "str", "Provider.", not_null=True),
        _c("batch_id", "str", "Batch id if one could be read."),
        _c("reason", "str", "Why it was rejected.", not_null=True),
        _c("payload", "str", "The object or page as received (secrets redacted)."),
        _c("rejected_at", "ts", "When.", not_null=True),
    ),
)

SYNC_STATE = Table(
    "sync_state",
    "Per-provider incremental watermark; advanced only when a listing finishes.",
    (
        _c("provider", "str", "Provider.", not_null=True),
        _c("watermark", "ts", "Newest created_at seen by the last finished listing."),
        _c("updated_at", "ts", "When it was advanced."),
        _c("run_id", "str", "Run that advanced it."),
    ),
    ("provider",),
)

# -- results and cost ---------------------------------------------------------------------
# What transforms/result_lines.py reads from each results line (rules in docs/costs.md).
RESULT_LINE_COLUMNS: tuple[Column, ...] = (
    _c("custom_id", "str", "The request's custom_id (repeats are kept: the key is the line)."),
    _c("outcome", "str", "succeeded | errored | expired | canceled (rules in docs/costs.md).",
       not_null=True),
    _c("status_code", "int", "response.status_code (OpenAI style), else NULL."),
    _c("request_id", "str", "response.request_id (or Anthropic's result.error.request_id)."),
    _c("error_code", "str", "error.code, else result.error's (inner) type, else "
       "response.body.error code or type."),
    _c("error_message", "str", "The matching error message."),
    _c("model", "str", "The body's model (dated snapshot), else the batch's requested model."),
    _c("input_tokens", "int", "Every prompt token, cache reads and writes included; NULL when "
       "the line has no usage."),
    _c("cached_input_tokens", "int", "Prompt tokens read from the provider's cache."),
    _c("cache_write_tokens", "int", "Prompt tokens written to the provider's cache."),
    _c("output_tokens", "int", "Output tokens, reasoning included."),
    _c("reasoning_tokens", "int", "Reasoning/thinking tokens as reported (plus a total's "
       "surplus)."),
    _c("body", "json", "The response body, redacted; only with --store-result-bodies."),
)

BATCH_RESULTS = Table(
    "batch_results",
    "One row per line of a finished batch's results: what each request did and cost. A "
    "batch's lines are replaced together, in one transaction, so nothing is counted twice.",
    (
        *_IDENTITY,
        _c("line", "int", "0-based position in the results body.", not_null=True),
        *RESULT_LINE_COLUMNS,
        _c("cost_usd", "float", "Cost at batch rates, USD; NULL when unpriced (never 0 for "
           "a missing price)."),
        _c("list_cost_usd", "float", "The same tokens at standard (list) rates."),
        _c("price_basis", "str", "'batch' (the price's batch rates) or 'half-standard' "
           "(0.5 x standard, Bifrost's rule); NULL when unpriced."),
        _c("price_source", "str", "Where the price came from: the prices file or the "
           "shipped table."),
        _c("price_model", "str", "The priced model that matched (exact or longest prefix)."),
        _c("unpriced_reason", "str", "Why cost_usd is NULL: no usage, no model, no price, "
           "missing rate."),
        _c("run_id", "str", "Sync run that loaded the line."),
    ),
    ("provider", "batch_id", "line"),
    indexed=False,
)

RESULTS_STATE = Table(
    "batch_results_state",
    "One row per finished batch whose results were asked for: loaded, to retry, or "
    "unavailable, with the reason. A loaded batch is never asked again (but by "
    "`batchlake results --refetch`).",
    (
        *_IDENTITY,
        _c("state", "str", "'loaded', 'retry' (a transient fault: asked again after "
           "next_attempt_at) or 'unavailable' (no output, gone, refused).", not_null=True),
        _c("lines", "int", "Result lines stored."),
        _c("rejected_lines", "int", "Lines sent to rejects."),
        _c("parse_errors", "int", "Output lines the gateway itself could not parse."),
        _c("attempts", "int", "Requests made for these results."),
        _c("last_error", "str", "The last failure, one line."),
        _c("last_status", "int", "HTTP status of the last failure, if any."),
        _c("last_attempt_at", "ts", "When they were last asked for."),
        _c("next_attempt_at", "ts", "A retry waits until then (backoff)."),
        _c("loaded_at", "ts", "When the lines were stored."),
        _c("run_id", "str", "Run of the last attempt."),
        _c("same_failures", "int", "Attempts in a row whose body was unreadable with the "
           "same error (the same bytes fail the same way): from 2 on, the retry waits a week, "
           "then longer, up to 30 days."),
    ),
    ("provider", "batch_id"),
)

PRICES = Table(
    "prices",
    "The prices in force, USD per 1M tokens, with their source: every cost can be recomputed "
    "in SQL from this table (`batchlake reprice` does).",
    (
        _c("rank", "int", "Lookup order: 0 the prices file, 1 the shipped table.", not_null=True),
        _c("provider", "str", "Provider, or '*' for any.", not_null=True),
        _c("model", "str", "Model name; a longer model it prefixes (followed by '-') matches "
           "too.", not_null=True),
        _c("input", "float", "Standard input rate."),
        _c("output", "float", "Standard output rate."),
        _c("cache_read", "float", "Standard cache-read rate (missing: the input rate)."),
        _c("cache_write", "float", "Standard cache-write rate (missing: the input rate)."),
        _c("batch_input", "float", "Batch input rate (missing: 0.5 x input)."),
        _c("batch_output", "float", "Batch output rate (missing: 0.5 x output)."),
        _c("source", "str", "Where the row came from.", not_null=True),
        _c("price_model", "str", "The model genai-prices' matcher priced this name as (the "
           "shipped table has a row per name a line sent); NULL: the row's own model."),
        _c("batch_cache_read", "float", "Batch cache-read rate: the shipped table's, for a "
           "model with a batch variant (missing: cache_read x batch_input / input, or x 0.5)."),
        _c("batch_cache_write", "float", "Batch cache-write rate, likewise."),
    ),
    ("rank", "provider", "model"),
)

PRICE_TIERS = Table(
    "price_tiers",
    "Tiered rates of a price row: a line whose input tokens exceed `start_tokens` pays "
    "`value` for all its tokens of that kind (the highest tier it passes), as genai-prices "
    "prices it (e.g. Gemini 2.5 Pro above 200k prompt tokens).",
    (
        _c("rank", "int", "The price row's rank.", not_null=True),
        _c("provider", "str", "The price row's provider.", not_null=True),
        _c("model", "str", "The price row's model.", not_null=True),
        _c("rate", "str", "input, output, cache_read, cache_write, batch_input, "
           "batch_output, batch_cache_read or batch_cache_write.", not_null=True),
        _c("start_tokens", "int", "The tier applies above this many input tokens.",
           not_null=True),
        _c("value", "float", "USD per 1M tokens in this tier.", not_null=True),
    ),
    ("rank", "provider", "model", "rate", "start_tokens"),
)

# -- the gateway's bill (batchlake reconcile; rules in docs/costs.md) -----------------------
GATEWAY_BATCH_COSTS = Table(
    "gateway_batch_costs",
    "One row per finished batch whose cost was compared with the gateway's own (Bifrost 2's "
    "batch cost row in its logs API): what the gateway recorded, batchlake's cost beside it, "
    "and the status. A batch is compared again only when batchlake's side changed (refetched "
    "or repriced results) or, for a missing or unpriced gateway cost, after a backoff.",
    (
        *_IDENTITY,
        _c("status", "str", "match | differs | gateway_unpriced | gateway_missing | "
           "batchlake_unpriced.", not_null=True),
        _c("reason", "str", "Why, where the data tells (differs: tokens, requests, models, "
           "rates, billed k times)."),
        _c("batchlake_cost", "float", "batchlake's cost of the batch at compare time, USD."),
        _c("gateway_cost", "float", "The gateway's cost, USD; NULL when it left it NULL or "
           "has no row."),
        _c("difference", "float", "gateway_cost - batchlake_cost, USD."),
        _c("log_id", "str", "Id of the gateway's cost row (UUIDv5 of provider:batch_id, or "
           "an older build's)."),
        _c("found_by", "str", "'id' (GET /api/logs/{id}) or 'list' (GET /api/logs, matched "
           "on batch_debug.batch_id); NULL when there is no row."),
        _c("gateway_model", "str", "The row's model: one model, or 'mixed'."),
        _c("prompt_tokens", "int", "The row's token_usage.prompt_tokens."),
        _c("completion_tokens", "int", "The row's token_usage.completion_tokens."),
        _c("total_tokens", "int", "The row's token_usage.total_tokens."),
        _c("requests_total", "int", "batch_debug.request_counts.total."),
        _c("requests_completed", "int", "batch_debug.request_counts.completed."),
        _c("requests_failed", "int", "batch_debug.request_counts.failed."),
        _c("incomplete", "bool", "The gateway marks its total as understating the batch."),
        _c("parse_errors", "int", "Result lines the gateway could not parse."),
        _c("model_breakdowns", "json", "The row's per-model breakdowns, as sent."),
        _c("logged_at", "ts", "The row's timestamp (when the gateway settled the batch)."),
        _c("echo_rows", "int", "Other rows of the batch passed over (echo rows: never the "
           "bill)."),
        _c("fingerprint", "str", "batchlake's side at compare time (lines, priced lines, "
           "cost, tokens, loaded_at): a change means compare again."),
        _c("fetched_at", "ts", "When the gateway was last asked.", not_null=True),
        _c("checks", "int", "How many times the gateway was asked for this batch."),
        _c("next_check_at", "ts", "A missing or unpriced gateway cost is asked again after "
           "this (1 h, doubling per check, at most 7 days); NULL: only when batchlake's "
           "side changes."),
        _c("run_id", "str", "The reconcile run that last asked."),
    ),
    ("provider", "batch_id"),
)

TABLES: tuple[Table, ...] = (
    BATCHES,
    BATCH_ERRORS,
    BATCH_METADATA,
    BATCH_SNAPSHOTS,
    SYNC_RUNS,
    REJECTS,
    SYNC_STATE,
    BATCH_RESULTS,
    RESULTS_STATE,
    PRICES,
    PRICE_TIERS,
    GATEWAY_BATCH_COSTS,
)
TABLES_BY_NAME = {t.name: t for t in TABLES}

# Keys of extra_fields that Bifrost sends (core/schemas/bifrost.go) and batchlake keeps in
# `extras` rather than in a column of their own.
PASSTHROUGH_EXTRA_FIELDS: tuple[str, ...] = (
    "parse_errors", "provider_response_headers", "litellm_compat", "converted_request_type",
    "dropped_compat_plugin_params",
)

# Columns the flattener fills from JSON (the rest are derived in polars or by the loader).
SOURCED_BATCH_COLUMNS: tuple[Column, ...] = tuple(
    c for c in BATCHES.columns if c.source is not None
)
TRACKED_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in BATCHES.columns if c.tracked and c.name not in ("provider", "batch_id")
)
# Frames the transform produces and the loader consumes (bookkeeping is the loader's).
STAGED_BATCH_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in BATCHES.columns
    if c not in _BOOKKEEPING and c.name not in ("content_hash", "row_key")
)


def create_table_sql(table: Table) -> str:
    cols = [
        f'    "{c.name}" {c.duckdb_type}{" NOT NULL" if c.not_null else ""}'
        for c in table.columns
    ]
    if table.primary_key and table.indexed:
        cols.append("    PRIMARY KEY (" + ", ".join(f'"{k}"' for k in table.primary_key) + ")")
    return f'CREATE TABLE IF NOT EXISTS "{table.name}" (\n' + ",\n".join(cols) + "\n);"


def markdown_docs() -> str:
    """The tables as Markdown, the same text as docs/schema.md."""
    out = ["# batchlake tables", "", "Generated from `transforms/schema.py` "
           "(`batchlake schema > docs/schema.md`).", ""]
    for t in TABLES:
        out += [f"## `{t.name}`", "", t.doc, ""]
        if t.primary_key:
            how = "" if t.indexed else " (unique by the merge; no index, see transforms/schema.py)"
            out += [f"Key: `({', '.join(t.primary_key)})`{how}", ""]
        out += ["| column | type | from | meaning |", "|---|---|---|---|"]
        for c in t.columns:
            src = ".".join(c.source) if c.source else "derived"
            out.append(f"| `{c.name}` | {c.duckdb_type} | {src} | {c.doc} |")
        out.append("")
    return "\n".join(out)


# -- retries and inputs (batchlake retry, sync --inputs) ------------------------------------
RETRY_BATCHES = Table(
    "retry_batches",
    "One row per retry file `batchlake retry` wrote (requests of one source batch, endpoint "
    "and model) and, once submitted, the batch made of it. A run that only writes files "
    "replaces the unsubmitted rows of the chains it covers; submitted rows stay.",
    (
        _c("run_id", "str", "The retry run.", not_null=True),
        _c("provider", "str", "Provider.", not_null=True),
        _c("file_name", "str", "The file's name in the output folder.", not_null=True),
        _c("source_batch_id", "str", "The batch whose failures the file retries (the new "
           "batch's batchlake_retry_of).", not_null=True),
        _c("root_batch_id", "str", "The first batch of the chain of retries.", not_null=True),
        _c("endpoint", "str", "The requests' endpoint."),
        _c("model", "str", "The requests' model (NULL: mixed, Anthropic)."),
        _c("completion_window", "str", "The completion window asked for."),
        _c("requests", "int", "Requests in the file."),
        _c("bytes", "int", "The file's size."),
        _c("estimated_cost_usd", "float", "What the requests may cost at batch rates, "
           "estimated (see README, Retry what failed); NULL when nothing could price them."),
        _c("file_path", "str", "Where it was written."),
        _c("written_at", "ts", "When it was written."),
        _c("submit_state", "str", "'written' (not submitted), 'uploading' (a submit began: "
           "until the batch is recorded or seen, in doubt), 'submitted' or 'failed'.",
           not_null=True),
        _c("uploaded_file_id", "str", "The gateway's id of the uploaded file."),
        _c("retry_batch_id", "str", "The batch created from it."),
        _c("submitted_at", "ts", "When the batch was created."),
        _c("submit_error", "str", "Why a submit failed, one line."),
    ),
    ("run_id", "file_name"),
)

RETRY_REQUESTS = Table(
    "retry_requests",
    "One row per request a retry file holds: which batch's failure it retries, why, and the "
    "batch it was submitted in. custom_ids stay as they were, so a retry batch's results "
    "join back to these rows.",
    (
        _c("run_id", "str", "The retry run.", not_null=True),
        _c("provider", "str", "Provider.", not_null=True),
        _c("source_batch_id", "str", "The batch of the attempt that failed.", not_null=True),
        _c("root_batch_id", "str", "The first batch of the chain.", not_null=True),
        _c("custom_id", "str", "The request's key (custom_id, Gemini key, Bedrock recordId).",
           not_null=True),
        _c("reason", "str", "errored, expired, canceled, no_result_line or batch_failed."),
        _c("error_code", "str", "The failed line's error code."),
        _c("file_name", "str", "The retry file holding it.", not_null=True),
        _c("estimated_cost_usd", "float", "Its estimated cost at batch rates."),
    ),
    ("run_id", "provider", "source_batch_id", "custom_id"),
    indexed=False,
)

BATCH_REQUESTS = Table(
    "batch_requests",
    "One row per request of a finished batch's input file (`sync --inputs`): what was asked, "
    "never the prompt itself unless `--store-request-bodies`.",
    (
        *_IDENTITY,
        _c("line", "int", "0-based position among the input file's lines.", not_null=True),
        _c("custom_id", "str", "The request's key (custom_id, Gemini key, Bedrock recordId)."),
        _c("endpoint", "str", "The request's url (OpenAI, Azure), else the batch's endpoint."),
        _c("model", "str", "The body's model, else the batch's."),
        _c("max_tokens", "int", "max_tokens / max_completion_tokens / max_output_tokens / "
           "generationConfig.maxOutputTokens / inferenceConfig.maxTokens / max_gen_len."),
        _c("temperature", "float", "The request's temperature."),
        _c("body_bytes", "int", "Bytes of the request body, compact JSON."),
        _c("body_hash", "str", "sha256 of the body's canonical JSON (sorted keys): equal "
           "requests, equal hash."),
        _c("body", "json", "The request body, redacted; only with --store-request-bodies."),
        _c("run_id", "str", "Sync run that read it."),
    ),
    ("provider", "batch_id", "line"),
    indexed=False,
)

BATCH_INPUTS_STATE = Table(
    "batch_inputs_state",
    "One row per finished batch whose input file `sync --inputs` asked for: loaded or "
    "unavailable (with the reason), or to retry after a transient fault.",
    (
        *_IDENTITY,
        _c("state", "str", "'loaded', 'retry' or 'unavailable'.", not_null=True),
        _c("lines", "int", "Requests stored."),
        _c("rejected_lines", "int", "Lines that are not requests of the provider's format."),
        _c("last_error", "str", "The last failure, one line."),
        _c("last_status", "int", "HTTP status of the last failure."),
        _c("attempts", "int", "Requests made for the file."),
        _c("loaded_at", "ts", "When the lines were stored (or the last attempt)."),
        _c("run_id", "str", "Run of the last attempt."),
    ),
    ("provider", "batch_id"),
)

TABLES = (*TABLES, RETRY_BATCHES, RETRY_REQUESTS, BATCH_REQUESTS, BATCH_INPUTS_STATE)
TABLES_BY_NAME.update({t.name: t for t in TABLES[-4:]})
