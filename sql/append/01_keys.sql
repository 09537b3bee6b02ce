-- A load group none of whose batches is stored, each once (a first sync, a backfill, the new
-- batches of an incremental one), is appended as read from its staged parts: no staged copy
-- of every column and no joins, which the general merge (sql/merge) pays for on such groups.
-- These keys decide which of the two plans a group takes.
CREATE OR REPLACE TEMP TABLE stage_keys AS
SELECT provider, batch_id, {{row_key}} AS row_key FROM incoming_batches;
