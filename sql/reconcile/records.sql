-- The last comparison of every batch in the window (providers $providers, created since
-- $since): differences first, then what could not be compared, then matches.
SELECT g.provider, g.batch_id, g.batchlake_cost, g.gateway_cost, g.difference, g.status,
       g.reason, g.log_id, g.found_by, g.fetched_at
FROM gateway_batch_costs g
JOIN batches b USING (provider, batch_id)
WHERE list_contains($providers, g.provider) AND ($since IS NULL OR b.created_at >= $since)
ORDER BY CASE g.status WHEN 'differs' THEN 0 WHEN 'gateway_unpriced' THEN 1
                       WHEN 'gateway_missing' THEN 2 WHEN 'batchlake_unpriced' THEN 3 ELSE 4 END,
         abs(g.difference) DESC NULLS LAST, g.provider, g.batch_id
