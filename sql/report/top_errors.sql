-- The most frequent batch-level error codes (errors.data[] of the batch objects).
SELECT e.provider, coalesce(e.code, '(none)') AS code, count(*) AS errors,
       count(DISTINCT e.batch_id) AS batches, mode(e.message) AS top_message
FROM batch_errors e JOIN batches b USING (provider, batch_id)
WHERE ($since IS NULL OR b.created_at >= $since) AND ($provider IS NULL OR b.provider = $provider)
GROUP BY ALL
ORDER BY errors DESC, code
LIMIT $limit
