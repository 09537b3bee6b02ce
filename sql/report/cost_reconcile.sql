-- The gateway's bill beside batchlake's, per provider and day (v_cost_reconcile; batches
-- created in the window; filled by batchlake reconcile).
SELECT day, provider, batches_checked, matched, differing,
       round(differing_usd, 6) AS differing_usd, round(differing_abs_usd, 6) AS differing_abs_usd,
       gateway_unpriced, gateway_missing, batchlake_unpriced,
       round(batchlake_cost, 4) AS batchlake_cost, round(gateway_cost, 4) AS gateway_cost
FROM v_cost_reconcile
WHERE ($since IS NULL OR day >= CAST($since AS DATE)) AND ($provider IS NULL OR provider = $provider)
ORDER BY day DESC, provider
