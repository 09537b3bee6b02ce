-- Every batch whose results are loaded (providers $providers, created since $since), with a
-- fingerprint of batchlake's side (and of the $tolerance that classified it) and whether the
-- gateway is to be asked now: never asked, batchlake's side or the tolerance changed since
-- (refetched or repriced results), a missing or unpriced gateway cost whose backoff has
-- passed, or $recheck.
WITH loaded AS (
    SELECT s.provider, s.batch_id, s.loaded_at, b.created_at,
           coalesce(b.completed_at, b.expired_at, b.cancelled_at, b.finalizing_at,
                    s.loaded_at) AS finished_at
    FROM batch_results_state s
    JOIN batches b USING (provider, batch_id)
    WHERE s.state = 'loaded' AND list_contains($providers, s.provider)
      AND ($since IS NULL OR b.created_at >= $since)
), sides AS (
    SELECT r.provider, r.batch_id, count(*) AS lines, count(r.cost_usd) AS priced,
           sum(r.cost_usd) AS cost, sum(r.input_tokens) AS input_tokens,
           sum(r.cached_input_tokens) AS cached, sum(r.cache_write_tokens) AS written,
           sum(r.output_tokens) AS output_tokens
    FROM batch_results r
    SEMI JOIN loaded l ON l.provider = r.provider AND l.batch_id = r.batch_id
    GROUP BY ALL
), marked AS (
    SELECT l.provider, l.batch_id, l.created_at, l.finished_at, l.loaded_at,
           md5(concat_ws('|', coalesce(s.lines, 0), coalesce(s.priced, 0),
                         coalesce(printf('%.9f', s.cost), 'null'),
                         coalesce(s.input_tokens, 0), coalesce(s.cached, 0),
                         coalesce(s.written, 0), coalesce(s.output_tokens, 0),
                         coalesce(CAST(epoch_us(l.loaded_at) AS VARCHAR), 'null'),
                         $tolerance)
           ) AS fingerprint,
           g.status, g.fingerprint AS compared_fingerprint, g.next_check_at
    FROM loaded l
    LEFT JOIN sides s USING (provider, batch_id)
    LEFT JOIN gateway_batch_costs g USING (provider, batch_id)
)
SELECT provider, batch_id, created_at, finished_at, loaded_at, fingerprint,
       $recheck OR status IS NULL OR fingerprint IS DISTINCT FROM compared_fingerprint
           OR (status IN ('gateway_missing', 'gateway_unpriced')
               AND coalesce(next_check_at <= $now, true)) AS due
FROM marked
ORDER BY finished_at DESC, provider, batch_id
