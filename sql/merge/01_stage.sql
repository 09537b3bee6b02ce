-- Stage one load chunk: hash the tracked columns and classify each batch against what is
-- stored. incoming_batches reads the chunk's staged Parquet parts; its name differs from every
-- table on purpose (a frame named like a table makes INSERT ... SELECT read the table: 0 rows,
-- no error). A batch in several parts keeps its last occurrence, as within one part.
CREATE OR REPLACE TEMP TABLE stage_batches AS
SELECT i.*, {{content_hash}} AS content_hash, {{row_key}} AS row_key
FROM incoming_batches i
SEMI JOIN (SELECT provider, batch_id, max(part) AS part FROM incoming_batches GROUP BY ALL) last
    ON last.provider = i.provider AND last.batch_id = i.batch_id AND last.part = i.part;

-- Stored versions, in steps because the table grows with every sync: candidates are found
-- by row_key alone (one BIGINT column scanned, far cheaper than the two text keys), then
-- only those rows are read, by rowid, and stage_changes confirms them on the real key.
-- Separate statements and a rowid IN (...) filter: joined in one query, the optimizer makes
-- provider and batch_id join keys and scans every column of the table.
CREATE OR REPLACE TEMP TABLE stage_candidates AS
SELECT b.rowid AS stored_rowid
FROM stage_batches s JOIN batches b ON b.row_key = s.row_key;

CREATE OR REPLACE TEMP TABLE stage_stored AS
SELECT rowid AS stored_rowid, provider, batch_id, content_hash, errors_json, metadata,
       first_seen_at
FROM batches
WHERE rowid IN (SELECT stored_rowid FROM stage_candidates);

CREATE OR REPLACE TEMP TABLE stage_changes AS
SELECT s.provider, s.batch_id,
       CASE WHEN b.batch_id IS NULL THEN 'inserted'
            WHEN b.content_hash IS DISTINCT FROM s.content_hash THEN 'updated'
            ELSE 'unchanged' END AS change,
       (b.batch_id IS NULL OR b.errors_json IS DISTINCT FROM s.errors_json) AS errors_changed,
       (b.batch_id IS NULL OR b.metadata IS DISTINCT FROM s.metadata) AS metadata_changed,
       b.stored_rowid, b.first_seen_at, s.is_terminal, s.part
FROM stage_batches s
LEFT JOIN stage_stored b ON b.provider = s.provider AND b.batch_id = s.batch_id;
