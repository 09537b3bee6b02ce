-- Retry batches batchlake submitted whose outcome is not known yet: not seen by a sync, or
-- seen and not finished (a submit of the same failures again waits for them, or --force).
SELECT f.retry_batch_id, f.source_batch_id, f.file_name, coalesce(b.status, 'not synced yet')
FROM retry_batches f
LEFT JOIN batches b ON b.provider = f.provider AND b.batch_id = f.retry_batch_id
WHERE f.provider = $provider AND f.submit_state = 'submitted' AND NOT coalesce(b.is_terminal, false)
