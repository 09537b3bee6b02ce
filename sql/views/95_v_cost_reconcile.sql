-- The gateway's bill beside batchlake's (batchlake reconcile; rules in docs/costs.md), per
-- provider and day of the batches' creation, as v_daily_costs: each batch counts once, with
-- the status of its last comparison.
CREATE OR REPLACE VIEW v_cost_reconcile AS
SELECT
    CAST(date_trunc('day', b.created_at) AS DATE) AS day,
    g.provider,
    count(*) AS batches_checked,
    count(*) FILTER (WHERE g.status = 'match') AS matched,
    count(*) FILTER (WHERE g.status = 'differs') AS differing,
    -- gateway minus batchlake over the differing batches, net and in absolute value
    sum(g.difference) FILTER (WHERE g.status = 'differs') AS differing_usd,
    sum(abs(g.difference)) FILTER (WHERE g.status = 'differs') AS differing_abs_usd,
    count(*) FILTER (WHERE g.status = 'gateway_unpriced') AS gateway_unpriced,
    count(*) FILTER (WHERE g.status = 'gateway_missing') AS gateway_missing,
    count(*) FILTER (WHERE g.status = 'batchlake_unpriced') AS batchlake_unpriced,
    sum(g.batchlake_cost) AS batchlake_cost,
    sum(g.gateway_cost) AS gateway_cost
FROM gateway_batch_costs g
LEFT JOIN batches b USING (provider, batch_id)
GROUP BY ALL;
