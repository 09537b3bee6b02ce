-- What a succeeded request of each batch cost on average, per model and over all its models:
-- the first guess of what its retried requests will cost (at batch rates, as stored).
SELECT batch_id, model, avg(cost_usd) AS mean_cost_usd
FROM batch_results
WHERE provider = $provider AND outcome = 'succeeded' AND cost_usd IS NOT NULL
  AND batch_id IN (SELECT unnest(CAST($batch_ids AS VARCHAR[])))
GROUP BY GROUPING SETS ((batch_id, model), (batch_id))
