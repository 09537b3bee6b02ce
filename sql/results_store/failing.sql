-- The batches whose results could not be read, newest attempt first, with the reason
-- (batchlake results --status): retries with their next attempt, and unavailable ones.
SELECT provider, batch_id, state, attempts, same_failures, last_status, last_error,
       last_attempt_at, next_attempt_at
FROM batch_results_state
WHERE state <> 'loaded'
ORDER BY last_attempt_at DESC NULLS LAST, provider, batch_id
