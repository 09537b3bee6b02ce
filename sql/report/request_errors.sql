-- The most frequent request error codes across the batches' results.
SELECT r.provider, r.outcome, coalesce(r.error_code, '(none)') AS error_code,
       count(*) AS requests, count(DISTINCT r.batch_id) AS batches,
       mode(r.error_message) AS top_message
FROM batch_results r JOIN batches b USING (provider, batch_id)
WHERE r.outcome <> 'succeeded'
  AND ($since IS NULL OR b.created_at >= $since) AND ($provider IS NULL OR b.provider = $provider)
GROUP BY ALL
ORDER BY requests DESC, error_code
LIMIT $limit
