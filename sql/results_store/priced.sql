-- Result rows from {{rows}} with their cost (a fragment: rendered into load.sql and
-- reprice.sql). Rates are USD per 1M tokens; rules in docs/costs.md:
--   cost = ((input - cached - cache_write) * r_in + cached * r_cache_read
--           + cache_write * r_cache_write + output * r_out) / 1e6
-- A tiered rate is the tier's value once the line's input tokens exceed its start (the
-- highest such tier, for all the line's tokens of that kind: genai-prices' rule), else the
-- base rate. cost_usd at batch rates: the price's batch rates where given, else 0.5 x
-- standard (Bifrost's rule); batch cache rates are the price's where given (the shipped
-- table's batch price, genai-prices'), else the standard cache rates x (batch input /
-- input), or x 0.5. list_cost_usd at standard rates. A missing cache rate means the input
-- rate. No price, or a rate the tokens need and the price lacks: NULL cost and the reason,
-- never 0.
WITH tier_rates AS (
    SELECT r.provider, r.batch_id, r.line,
           arg_max(t.value, t.start_tokens) FILTER (WHERE t.rate = 'input') AS t_in,
           arg_max(t.value, t.start_tokens) FILTER (WHERE t.rate = 'output') AS t_out,
           arg_max(t.value, t.start_tokens) FILTER (WHERE t.rate = 'cache_read') AS t_cr,
           arg_max(t.value, t.start_tokens) FILTER (WHERE t.rate = 'cache_write') AS t_cw,
           arg_max(t.value, t.start_tokens) FILTER (WHERE t.rate = 'batch_input') AS t_bin,
           arg_max(t.value, t.start_tokens) FILTER (WHERE t.rate = 'batch_output') AS t_bout,
           arg_max(t.value, t.start_tokens) FILTER (WHERE t.rate = 'batch_cache_read') AS t_bcr,
           arg_max(t.value, t.start_tokens) FILTER (WHERE t.rate = 'batch_cache_write') AS t_bcw
    FROM {{rows}} r
    JOIN chosen_tiers t ON t.provider = r.provider AND t.model = r.model
    WHERE r.input_tokens > t.start_tokens
    GROUP BY r.provider, r.batch_id, r.line
), rated AS (
    SELECT r.provider, r.batch_id, r.line, {{line_cols_r}}, r.run_id,
           p.price_model, p.price_source,
           coalesce(t.t_in, p.input) AS input_rate,
           coalesce(t.t_out, p.output) AS output_rate,
           coalesce(t.t_cr, p.cache_read) AS cache_read_rate,
           coalesce(t.t_cw, p.cache_write) AS cache_write_rate,
           coalesce(t.t_bin, p.batch_input) AS batch_input_rate,
           coalesce(t.t_bout, p.batch_output) AS batch_output_rate,
           coalesce(t.t_bcr, p.batch_cache_read) AS batch_cache_read_rate,
           coalesce(t.t_bcw, p.batch_cache_write) AS batch_cache_write_rate
    FROM {{rows}} r
    LEFT JOIN chosen_prices p ON p.provider = r.provider AND p.model = r.model
    LEFT JOIN tier_rates t
      ON t.provider = r.provider AND t.batch_id = r.batch_id AND t.line = r.line
), base AS (
    SELECT r.provider, r.batch_id, r.line, {{line_cols_r}}, r.run_id,
           r.price_model, r.price_source,
           r.input_rate AS r_in, r.output_rate AS r_out,
           coalesce(r.cache_read_rate, r.input_rate) AS r_cr,
           coalesce(r.cache_write_rate, r.input_rate) AS r_cw,
           coalesce(r.batch_input_rate, 0.5 * r.input_rate) AS b_in,
           coalesce(r.batch_output_rate, 0.5 * r.output_rate) AS b_out,
           CASE WHEN r.batch_input_rate IS NOT NULL AND r.input_rate > 0
                THEN r.batch_input_rate / r.input_rate ELSE 0.5 END AS cache_ratio,
           r.batch_cache_read_rate AS b_cr, r.batch_cache_write_rate AS b_cw,
           CASE WHEN r.batch_input_rate IS NOT NULL AND r.batch_output_rate IS NOT NULL
                THEN 'batch'
                WHEN r.batch_input_rate IS NULL AND r.batch_output_rate IS NULL
                THEN 'half-standard'
                ELSE 'batch, half-standard where no batch rate' END AS basis,
           r.cache_read_rate IS NULL AS no_cr, r.cache_write_rate IS NULL AS no_cw,
           r.input_tokens - r.cached_input_tokens - r.cache_write_tokens AS uncached
    FROM rated r
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
           (uncached * coalesce(b_in, 0)
            + cached_input_tokens * coalesce(b_cr, r_cr * cache_ratio, 0)
            + cache_write_tokens * coalesce(b_cw, r_cw * cache_ratio, 0)
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
