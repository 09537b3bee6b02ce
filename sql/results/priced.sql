-- Result rows from {{rows}} with their cost (a fragment: rendered into load.sql and
-- reprice.sql). Rates are USD per 1M tokens; rules in docs/costs.md:
--   cost = ((input - cached - cache_write) * r_in + cached * r_cache_read
--           + cache_write * r_cache_write + output * r_out) / 1e6
-- cost_usd at batch rates: the price's batch rates where given, else 0.5 x standard
-- (Bifrost's rule); batch cache rates are the standard cache rates x (batch input / input),
-- or x 0.5. list_cost_usd at standard rates. A missing cache rate means the input rate. No
-- price, or a rate the tokens need and the price lacks: NULL cost and the reason, never 0.
WITH base AS (
    SELECT r.provider, r.batch_id, r.line, {{line_cols_r}}, r.run_id,
           p.price_model, p.price_source,
           p.input AS r_in, p.output AS r_out,
           coalesce(p.cache_read, p.input) AS r_cr, coalesce(p.cache_write, p.input) AS r_cw,
           coalesce(p.batch_input, 0.5 * p.input) AS b_in,
           coalesce(p.batch_output, 0.5 * p.output) AS b_out,
           CASE WHEN p.batch_input IS NOT NULL AND p.input > 0 THEN p.batch_input / p.input
                ELSE 0.5 END AS cache_ratio,
           CASE WHEN p.batch_input IS NOT NULL AND p.batch_output IS NOT NULL THEN 'batch'
                WHEN p.batch_input IS NULL AND p.batch_output IS NULL THEN 'half-standard'
                ELSE 'batch, half-standard where no batch rate' END AS basis,
           p.cache_read IS NULL AS no_cr, p.cache_write IS NULL AS no_cw,
           r.input_tokens - r.cached_input_tokens - r.cache_write_tokens AS uncached
    FROM {{rows}} r
    LEFT JOIN chosen_prices p ON p.provider = r.provider AND p.model = r.model
), judged AS (
    SELECT *,
           CASE
               WHEN input_tokens IS NULL THEN 'no usage in the line'
               WHEN model IS NULL THEN 'no model in the line or the batch'
               WHEN price_model IS NULL THEN 'no price for ' || provider || ' / ' || model
               WHEN uncached < 0 THEN 'cached and cache-write tokens exceed the input tokens'
               WHEN r_in IS NULL AND (uncached > 0 OR (cached_input_tokens > 0 AND no_cr)
                                      OR (cache_write_tokens > 0 AND no_cw))
                   THEN 'no input rate for ' || price_model
               WHEN r_out IS NULL AND output_tokens > 0 THEN 'no output rate for ' || price_model
           END AS reason
    FROM base
)
SELECT provider, batch_id, line, {{line_cols}},
       CASE WHEN reason IS NULL THEN
           (uncached * coalesce(b_in, 0) + cached_input_tokens * coalesce(r_cr * cache_ratio, 0)
            + cache_write_tokens * coalesce(r_cw * cache_ratio, 0)
            + output_tokens * coalesce(b_out, 0)) / 1e6
       END AS cost_usd,
       CASE WHEN reason IS NULL THEN
           (uncached * coalesce(r_in, 0) + cached_input_tokens * coalesce(r_cr, 0)
            + cache_write_tokens * coalesce(r_cw, 0) + output_tokens * coalesce(r_out, 0)) / 1e6
       END AS list_cost_usd,
       CASE WHEN reason IS NULL THEN basis END AS price_basis,
       price_source, price_model,
       reason AS unpriced_reason,
       run_id
FROM judged
