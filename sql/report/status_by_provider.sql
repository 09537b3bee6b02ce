-- Batches per provider and normalised status (the report page's stacked bars).
SELECT provider, status_norm, count(*) AS batches
FROM batches
WHERE ($since IS NULL OR created_at >= $since) AND ($provider IS NULL OR provider = $provider)
GROUP BY ALL
ORDER BY provider, batches DESC
