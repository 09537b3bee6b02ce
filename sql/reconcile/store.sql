-- Record this run's comparisons (reconcile_incoming): one row per batch, replaced. `checks`
-- counts the checks in a row with the same status; a missing or unpriced gateway cost is
-- asked again after 1 h, doubling with each such check, at most 7 days.
INSERT INTO gateway_batch_costs AS g ({{columns}})
SELECT {{columns}} FROM reconcile_incoming
ON CONFLICT (provider, batch_id) DO UPDATE SET
    {{updates}},
    checks = CASE WHEN g.status = excluded.status THEN coalesce(g.checks, 0) + 1 ELSE 1 END,
    next_check_at = CASE WHEN excluded.status IN ('gateway_missing', 'gateway_unpriced')
        THEN excluded.fetched_at + to_seconds(least(604800, 3600 * pow(2, least(
            CASE WHEN g.status = excluded.status THEN coalesce(g.checks, 0) ELSE 0 END, 20))))
        END
