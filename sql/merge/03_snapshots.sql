-- History: one snapshot per observed change ($1 observed_at, $2 run_id).
-- when: inserted, updated
INSERT INTO batch_snapshots (provider, batch_id, observed_at, run_id, {{snapshot_cols}})
SELECT s.provider, s.batch_id, $1, $2, {{snapshot_cols_s}}
FROM stage_batches s
JOIN stage_changes c ON c.provider = s.provider AND c.batch_id = s.batch_id
WHERE c.change <> 'unchanged';
