-- Queue, processing and total durations per provider (finished batches).
SELECT provider, count(total_s) AS finished,
       round(quantile_cont(queue_s, 0.5)) AS queue_p50_s,
       round(quantile_cont(processing_s, 0.5)) AS processing_p50_s,
       round(quantile_cont(processing_s, 0.9)) AS processing_p90_s,
       round(quantile_cont(total_s, 0.5)) AS total_p50_s,
       round(quantile_cont(total_s, 0.99)) AS total_p99_s
FROM batches
WHERE ($since IS NULL OR created_at >= $since) AND ($provider IS NULL OR provider = $provider)
GROUP BY provider
ORDER BY provider
