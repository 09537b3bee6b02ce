-- New batches: a plain insert (cheaper than going through ON CONFLICT).
INSERT INTO batches ({{staged_cols}}, content_hash, first_seen_at, last_seen_at, last_changed_at,
                     last_run_id)
SELECT {{staged_cols_s}}, s.content_hash, $1, $1, $1, $2
FROM stage_batches s
JOIN stage_changes c ON c.provider = s.provider AND c.batch_id = s.batch_id
WHERE c.change = 'inserted';

-- Changed batches; first_seen_at survives updates ($1 observed_at, $2 run_id).
INSERT INTO batches ({{staged_cols}}, content_hash, first_seen_at, last_seen_at, last_changed_at,
                     last_run_id)
SELECT {{staged_cols_s}}, s.content_hash, $1, $1, $1, $2
FROM stage_batches s
JOIN stage_changes c ON c.provider = s.provider AND c.batch_id = s.batch_id
WHERE c.change = 'updated'
ON CONFLICT (provider, batch_id) DO UPDATE SET
    {{update_set}},
    content_hash = excluded.content_hash,
    last_seen_at = excluded.last_seen_at,
    last_changed_at = excluded.last_changed_at,
    last_run_id = excluded.last_run_id;

-- Unchanged batches: only remember that this run saw them (drives the by-id follow-up).
UPDATE batches SET last_seen_at = $1, last_run_id = $2
FROM stage_changes c
WHERE c.change = 'unchanged' AND batches.provider = c.provider
  AND batches.batch_id = c.batch_id;
