-- Cost per provider from the batches' results (batches created in the window).
SELECT c.provider, count(*) AS batches, sum(c.requests) AS requests,
       sum(c.succeeded) AS succeeded, sum(c.errored + c.expired + c.canceled) AS failed,
       round(sum(c.cost_usd), 4) AS cost_usd, round(sum(c.list_cost_usd), 4) AS list_cost_usd,
       round(sum(c.saved_usd), 4) AS saved_usd, sum(c.unpriced_requests) AS unpriced
FROM v_batch_costs c
WHERE ($since IS NULL OR c.created_at >= $since) AND ($provider IS NULL OR c.provider = $provider)
GROUP BY c.provider
ORDER BY c.provider
