-- New batches, appended as staged ($1 observed_at, $2 run_id).
INSERT INTO batches ({{staged_cols}}, content_hash, row_key, first_seen_at, last_seen_at,
                     last_changed_at, last_run_id)
SELECT {{staged_cols}}, {{content_hash}}, {{row_key}}, $1, $1, $1, $2
FROM incoming_batches i;

-- Their first snapshots, read back from the rows just appended (by rowid, as the general
-- merge reads stored rows): the content hash is computed once, in the append above. No
-- stored row had these row_keys, so exactly this group's rows match.
CREATE OR REPLACE TEMP TABLE stage_appended AS
SELECT b.rowid AS appended_rowid
FROM batches b SEMI JOIN stage_keys k ON b.row_key = k.row_key;

INSERT INTO batch_snapshots (provider, batch_id, observed_at, run_id, {{snapshot_cols}})
SELECT s.provider, s.batch_id, $1, $2, {{snapshot_cols_s}}
FROM batches s
WHERE s.rowid IN (SELECT appended_rowid FROM stage_appended);

-- Each batch is in one part, so every child row staged is its batch's.
INSERT INTO batch_errors
SELECT e.* EXCLUDE (part) FROM incoming_errors e;

INSERT INTO batch_metadata
SELECT m.* EXCLUDE (part) FROM incoming_metadata m;
