-- What the gateway cache did, per provider and hit type.
SELECT provider,
       CASE WHEN cache_hit THEN coalesce(cache_hit_type, '(unknown)') ELSE 'miss' END AS hit_type,
       count(*) AS batches,
       coalesce(sum(cache_input_tokens) FILTER (WHERE cache_hit), 0) AS tokens_from_cache
FROM batches
WHERE cache_hit IS NOT NULL
  AND ($since IS NULL OR created_at >= $since) AND ($provider IS NULL OR provider = $provider)
GROUP BY ALL
ORDER BY provider, hit_type
