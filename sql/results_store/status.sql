-- Per provider: the finished batches with output and where their results stand
-- (batchlake results --status, the report). backlog = never asked yet; retry_due = a retry
-- whose backoff has passed; retry_waiting = one still backing off.
SELECT b.provider,
       count(*) AS finished,
       count(*) FILTER (WHERE s.state = 'loaded') AS loaded,
       count(*) FILTER (WHERE s.state IS NULL) AS backlog,
       count(*) FILTER (WHERE s.state = 'retry' AND s.next_attempt_at <= now()) AS retry_due,
       count(*) FILTER (WHERE s.state = 'retry' AND s.next_attempt_at > now()) AS retry_waiting,
       count(*) FILTER (WHERE s.state = 'unavailable') AS unavailable,
       min(coalesce(b.completed_at, b.cancelled_at, b.expired_at, b.created_at))
           FILTER (WHERE s.state IS NULL) AS oldest_backlog,
       max(coalesce(b.completed_at, b.cancelled_at, b.expired_at, b.created_at))
           FILTER (WHERE s.state IS NULL) AS newest_backlog,
       CAST(coalesce(sum(s.lines), 0) AS HUGEINT) AS lines
FROM batches b
LEFT JOIN batch_results_state s USING (provider, batch_id)
WHERE b.is_terminal AND b.status_norm IN ('completed', 'expired', 'cancelled')
GROUP BY b.provider
ORDER BY b.provider
