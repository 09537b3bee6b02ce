-- One row per provider: batches by outcome, requests and success rate, cache hits.
-- Sums stay HUGEINT (int64 counts can overflow an int64 sum); rates are DOUBLE.
SELECT provider, count(*) AS batches,
       count(*) FILTER (WHERE status_norm = 'completed') AS completed,
       count(*) FILTER (WHERE status_norm = 'failed') AS failed,
       count(*) FILTER (WHERE status_norm IN ('expired', 'cancelled')) AS expired_or_cancelled,
       count(*) FILTER (WHERE NOT is_terminal) AS in_flight,
       sum(request_total) AS requests,
       round(CAST(sum(request_completed) AS DOUBLE)
             / nullif(CAST(sum(request_completed) AS DOUBLE) + sum(request_failed), 0), 4)
           AS success_rate,
       round(count(*) FILTER (WHERE cache_hit) / nullif(count(cache_hit), 0), 4) AS cache_hit_rate
FROM batches
WHERE ($since IS NULL OR created_at >= $since) AND ($provider IS NULL OR provider = $provider)
GROUP BY provider
ORDER BY provider
