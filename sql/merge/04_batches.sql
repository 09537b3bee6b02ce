-- Batches (parameters: 1 = observed_at, 2 = run_id). Rows are addressed by the rowid that
-- stage_changes read in this same transaction, so no statement joins the whole table again.
-- A "-- when:" line names the counts (02_counts.sql) of which one must be non-zero for the
-- statement to run: a chunk of new batches skips every statement about stored ones.
-- The key (provider, batch_id) is kept unique by this merge (stage rows are deduplicated,
-- one writer holds the file), not by an index: at 1M batches an ART index outgrew the
-- memory budget, and joins never used it.

-- A changed batch's old version goes; its new version is appended below. Cheaper than an
-- UPDATE of every column: DuckDB's checkpoint rewrites each updated column of the table,
-- while a delete + append writes only the new rows.
-- when: updated
DELETE FROM batches
WHERE rowid IN (SELECT stored_rowid FROM stage_changes WHERE change = 'updated');

-- New and changed batches; a changed one keeps its first_seen_at.
-- when: inserted, updated
INSERT INTO batches ({{staged_cols}}, content_hash, row_key, first_seen_at, last_seen_at,
                     last_changed_at, last_run_id)
SELECT {{staged_cols_s}}, s.content_hash, s.row_key, coalesce(c.first_seen_at, $1), $1, $1, $2
FROM stage_batches s
JOIN stage_changes c ON c.provider = s.provider AND c.batch_id = s.batch_id
WHERE c.change <> 'unchanged';

-- Unchanged open batches: remember that this run saw them still in that state. Terminal
-- ones are final, so re-confirming them would say nothing new; not touching them keeps a
-- full refresh of a large file from rewriting (and holding in memory until the checkpoint)
-- two columns of every row, and leaves their export partitions alone.
-- when: unchanged
UPDATE batches SET last_seen_at = $1, last_run_id = $2
WHERE rowid IN (SELECT stored_rowid FROM stage_changes
                WHERE change = 'unchanged' AND NOT is_terminal);
