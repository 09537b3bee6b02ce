-- New batches: a plain insert (cheaper than going through ON CONFLICT).
INSERT INTO batches ({{staged_cols}}, content_hash, first_seen_at, last_seen_at, last_changed_at,
                     last_run_id)
SELECT {{staged_cols_s}}, s.content_hash, $1, $1, $1, $2
FROM stage_batches s
JOIN stage_changes c ON c.provider = s.provider AND c.batch_id = s.batch_id
WHERE c.change = 'inserted';

-- Changed batches, updated in place; first_seen_at survives ($1 observed_at, $2 run_id).
-- The key (provider, batch_id) is kept unique by this merge (stage rows are deduplicated,
-- one writer holds the file), not by an index: at 1M batches an ART index outgrew the
-- memory budget, and joins never used it.
UPDATE batches SET
    {{update_set}},
    content_hash = s.content_hash,
    last_seen_at = $1,
    last_changed_at = $1,
    last_run_id = $2
FROM stage_batches s, stage_changes c
WHERE c.change = 'updated' AND c.provider = s.provider AND c.batch_id = s.batch_id
  AND batches.provider = s.provider AND batches.batch_id = s.batch_id;

-- Unchanged batches: only remember that this run saw them (drives the by-id follow-up).
UPDATE batches SET last_seen_at = $1, last_run_id = $2
FROM stage_changes c
WHERE c.change = 'unchanged' AND batches.provider = c.provider
  AND batches.batch_id = c.batch_id;
