-- Stage one chunk: hash the tracked columns and classify each batch against what is stored.
-- incoming_batches is a registered Arrow frame; its name differs from every table on purpose
-- (a frame named like a table makes INSERT ... SELECT read the table: 0 rows, no error).
CREATE OR REPLACE TEMP TABLE stage_batches AS
SELECT i.*, md5(concat_ws(chr(31), {{hash_inputs}})) AS content_hash
FROM incoming_batches i;

CREATE OR REPLACE TEMP TABLE stage_changes AS
SELECT s.provider, s.batch_id,
       CASE WHEN b.batch_id IS NULL THEN 'inserted'
            WHEN b.content_hash IS DISTINCT FROM s.content_hash THEN 'updated'
            ELSE 'unchanged' END AS change,
       (b.batch_id IS NULL OR b.errors_json IS DISTINCT FROM s.errors_json) AS errors_changed,
       (b.batch_id IS NULL OR b.metadata IS DISTINCT FROM s.metadata) AS metadata_changed,
       b.rowid AS stored_rowid, b.first_seen_at
FROM stage_batches s
LEFT JOIN batches b ON b.provider = s.provider AND b.batch_id = s.batch_id;
