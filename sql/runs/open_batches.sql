-- The provider's stored non-terminal batches, newest first, with what the request planner
-- weighs: (batch_id, created_at, deadline, last_changed_at, last_seen_at).
SELECT batch_id, created_at, least(deadline_at, expires_at), last_changed_at,
       last_seen_at
FROM batches WHERE provider = ? AND NOT is_terminal
ORDER BY created_at DESC NULLS LAST;
