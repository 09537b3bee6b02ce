-- The rows appended below are the only ones past the last rowid stored now: DuckDB gives an
-- appended row a rowid after every stored one (and, until the commit, far after).
SET VARIABLE batchlake_last_rowid = (SELECT coalesce(max(rowid), -1) FROM batches);

-- New batches, appended as staged ($1 observed_at, $2 run_id).
INSERT INTO batches ({{staged_cols}}, content_hash, row_key, first_seen_at, last_seen_at,
                     last_changed_at, last_run_id)
SELECT {{staged_cols}}, {{content_hash}}, {{row_key}}, $1, $1, $1, $2
FROM incoming_batches i;

-- Their first snapshots, read back from the rows just appended (the content hash is
-- computed once, in the append above). The rowid bound is a constant that DuckDB checks
-- against each row group's range: the stored rows are not scanned, as a join on row_key
-- scanned them (a cost that grows with the table).
INSERT INTO batch_snapshots (provider, batch_id, observed_at, run_id, {{snapshot_cols}})
SELECT s.provider, s.batch_id, $1, $2, {{snapshot_cols_s}}
FROM batches s
WHERE s.rowid > getvariable('batchlake_last_rowid');

-- Each batch is in one part, so every child row staged is its batch's.
INSERT INTO batch_errors
SELECT e.* EXCLUDE (part) FROM incoming_errors e;

INSERT INTO batch_metadata
SELECT m.* EXCLUDE (part) FROM incoming_metadata m;
