-- One row per provider: batches by outcome, requests and success rate, cache hits.
-- A batch object without request counts (Bifrost sends Bedrock's as 0) takes them from its
-- result lines where they are loaded; requests_from says which: batch objects, result lines,
-- or both. Sums stay HUGEINT (int64 counts can overflow an int64 sum); rates are DOUBLE.
WITH lines AS (
    SELECT provider, batch_id, count(*) AS lines,
           count(*) FILTER (WHERE outcome = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE outcome = 'errored') AS errored
    FROM batch_results
    GROUP BY provider, batch_id
), counted AS (
    SELECT b.*, coalesce(b.request_total, 0) > 0 AS has_counts, l.lines,
           CASE WHEN coalesce(b.request_total, 0) > 0 THEN b.request_total ELSE l.lines END
               AS n_requests,
           CASE WHEN coalesce(b.request_total, 0) > 0 THEN b.request_completed
                ELSE l.succeeded END AS n_completed,
           CASE WHEN coalesce(b.request_total, 0) > 0 THEN b.request_failed
                ELSE l.errored END AS n_failed
    FROM batches b
    LEFT JOIN lines l USING (provider, batch_id)
    WHERE ($since IS NULL OR b.created_at >= $since) AND ($provider IS NULL OR b.provider = $provider)
)
SELECT provider, count(*) AS batches,
       count(*) FILTER (WHERE status_norm = 'completed') AS completed,
       count(*) FILTER (WHERE status_norm = 'failed') AS failed,
       count(*) FILTER (WHERE status_norm IN ('expired', 'cancelled')) AS expired_or_cancelled,
       count(*) FILTER (WHERE NOT is_terminal) AS in_flight,
       sum(n_requests) AS requests,
       round(CAST(sum(n_completed) AS DOUBLE)
             / nullif(CAST(sum(n_completed) AS DOUBLE) + sum(n_failed), 0), 4) AS success_rate,
       CASE WHEN count(*) FILTER (WHERE NOT has_counts AND lines IS NOT NULL) = 0
                THEN 'batch objects'
            WHEN count(*) FILTER (WHERE has_counts) = 0 THEN 'result lines'
            ELSE 'both' END AS requests_from,
       round(count(*) FILTER (WHERE cache_hit) / nullif(count(cache_hit), 0), 4) AS cache_hit_rate
FROM counted
GROUP BY provider
ORDER BY provider
