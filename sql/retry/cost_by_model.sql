-- What a succeeded request of each model cost on average across the provider's batches: the
-- guess for a batch that has no priced succeeded line of its own. Keyed by the name the lines
-- give (a dated snapshot: gpt-4.1-2025-04-14) and, after those, by the name their batches
-- asked for (gpt-4.1, as an input line's body names it); the first of a name wins.
SELECT model, mean_cost_usd FROM (
    SELECT 0 AS rank, r.model, avg(r.cost_usd) AS mean_cost_usd
    FROM batch_results r
    WHERE r.provider = $provider AND r.outcome = 'succeeded' AND r.cost_usd IS NOT NULL
      AND r.model IS NOT NULL
    GROUP BY r.model
    UNION ALL
    SELECT 1, b.model_requested, avg(r.cost_usd)
    FROM batch_results r
    JOIN batches b USING (provider, batch_id)
    WHERE r.provider = $provider AND r.outcome = 'succeeded' AND r.cost_usd IS NOT NULL
      AND b.model_requested IS NOT NULL
    GROUP BY b.model_requested
)
ORDER BY rank, model
