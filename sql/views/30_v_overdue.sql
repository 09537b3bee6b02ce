-- Open batches past their completion window or expires_at, as of now, with how late.
CREATE OR REPLACE VIEW v_overdue AS
SELECT
    provider, batch_id, status, status_norm, model_requested AS model, created_at,
    deadline_at, expires_at,
    least(deadline_at, expires_at) AS due_at,
    date_diff('second', least(deadline_at, expires_at), now()) AS late_s,
    request_total, request_completed, request_failed, last_changed_at, last_seen_at
FROM batches
WHERE NOT is_terminal AND least(deadline_at, expires_at) < now();
