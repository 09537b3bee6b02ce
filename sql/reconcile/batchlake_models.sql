-- batchlake's side of the batches in reconcile_due, per model: lines with usage, tokens,
-- cost, unpriced lines, and how they were priced (basis, source, the model priced as).
SELECT r.provider, r.batch_id, coalesce(r.model, '(unknown)') AS model,
       count(*) AS lines,
       count(*) FILTER (WHERE r.input_tokens IS NOT NULL) AS requests,
       CAST(coalesce(sum(r.input_tokens), 0) AS BIGINT) AS input_tokens,
       CAST(coalesce(sum(r.cached_input_tokens), 0) AS BIGINT) AS cached_tokens,
       CAST(coalesce(sum(r.cache_write_tokens), 0) AS BIGINT) AS cache_write_tokens,
       CAST(coalesce(sum(r.output_tokens), 0) AS BIGINT) AS output_tokens,
       sum(r.cost_usd) AS cost,
       count(*) FILTER (WHERE r.cost_usd IS NULL AND r.input_tokens IS NOT NULL) AS unpriced,
       string_agg(DISTINCT r.price_basis, ', ' ORDER BY r.price_basis) AS price_basis,
       string_agg(DISTINCT r.price_source, ', ' ORDER BY r.price_source) AS price_source,
       any_value(r.price_model) AS price_model
FROM batch_results r
SEMI JOIN reconcile_due d ON d.provider = r.provider AND d.batch_id = r.batch_id
GROUP BY ALL
ORDER BY r.provider, r.batch_id, model
