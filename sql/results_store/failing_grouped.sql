-- The batches whose results could not be read, grouped by what went wrong (batchlake results
-- --status): one row per provider, state and reason (the batch id in a message reads {id}, so
-- thousands of batches past a retention make one row), with a count and one example batch.
SELECT provider, state, reason, count(*) AS batches, min(batch_id) AS example_batch_id,
       max(last_attempt_at) AS last_attempt_at, min(next_attempt_at) AS next_attempt_at
FROM (
    SELECT provider, state, batch_id, last_attempt_at, next_attempt_at,
           coalesce(CASE WHEN batch_id <> '' THEN replace(last_error, batch_id, '{id}')
                         ELSE last_error END, '(no message)') AS reason
    FROM batch_results_state
    WHERE state <> 'loaded'
)
GROUP BY provider, state, reason
ORDER BY batches DESC, provider, state, reason
