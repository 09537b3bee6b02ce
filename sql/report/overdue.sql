-- Open batches past their deadline, plus (with $unchanged_since) open ones unchanged since then.
SELECT provider, batch_id, status_norm AS status, model_requested AS model,
       least(deadline_at, expires_at) AS due_at,
       greatest(date_diff('second', least(deadline_at, expires_at), now()), 0) AS late_s,
       request_completed AS done, request_total AS total, last_changed_at
FROM batches
WHERE NOT is_terminal
  AND (least(deadline_at, expires_at) < now() OR last_changed_at < $unchanged_since)
  AND ($provider IS NULL OR provider = $provider)
ORDER BY late_s DESC, provider, batch_id
