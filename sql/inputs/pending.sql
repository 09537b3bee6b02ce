-- Finished batches whose input file `sync --inputs` has not read yet (or must read again
-- after a transient fault), newest first: providers whose gateway route can return one.
SELECT b.provider, b.batch_id, b.input_file_id, b.model_requested, b.endpoint
FROM batches b
LEFT JOIN batch_inputs_state s USING (provider, batch_id)
WHERE b.provider IN (SELECT unnest(CAST($providers AS VARCHAR[])))
  AND b.is_terminal AND b.status_norm IN ('completed', 'expired', 'cancelled', 'failed')
  AND b.input_file_id IS NOT NULL
  AND (s.state IS NULL OR s.state = 'retry')
ORDER BY b.created_at DESC, b.provider, b.batch_id
LIMIT $limit
