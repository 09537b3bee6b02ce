-- What a succeeded request of each model cost on average across the provider's batches: the
-- guess for a batch that has no priced succeeded line of its own.
SELECT model, avg(cost_usd) AS mean_cost_usd
FROM batch_results
WHERE provider = $provider AND outcome = 'succeeded' AND cost_usd IS NOT NULL
  AND model IS NOT NULL
GROUP BY model
