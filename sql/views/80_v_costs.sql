-- Cost views over batch_results (rules in docs/costs.md). Token sums stay HUGEINT (exact);
-- a cost sum is NULL when none of its lines is priced, never 0 for a missing price.
CREATE OR REPLACE VIEW v_batch_costs AS
SELECT
    r.provider,
    r.batch_id,
    any_value(b.model_requested) AS model_requested,
    any_value(b.created_at) AS created_at,
    count(*) AS requests,
    count(*) FILTER (WHERE r.outcome = 'succeeded') AS succeeded,
    count(*) FILTER (WHERE r.outcome = 'errored') AS errored,
    count(*) FILTER (WHERE r.outcome = 'expired') AS expired,
    count(*) FILTER (WHERE r.outcome = 'canceled') AS canceled,
    sum(r.input_tokens) AS input_tokens,
    sum(r.cached_input_tokens) AS cached_input_tokens,
    sum(r.cache_write_tokens) AS cache_write_tokens,
    sum(r.output_tokens) AS output_tokens,
    sum(r.reasoning_tokens) AS reasoning_tokens,
    sum(r.cost_usd) AS cost_usd,
    sum(r.list_cost_usd) AS list_cost_usd,
    sum(r.list_cost_usd) - sum(r.cost_usd) AS saved_usd,
    -- lines with usage but no cost (a line without usage costs nothing to price)
    count(*) FILTER (WHERE r.cost_usd IS NULL AND r.input_tokens IS NOT NULL)
        AS unpriced_requests
FROM batch_results r
LEFT JOIN batches b USING (provider, batch_id)
GROUP BY r.provider, r.batch_id;

CREATE OR REPLACE VIEW v_daily_costs AS
SELECT
    CAST(date_trunc('day', created_at) AS DATE) AS day,
    provider,
    count(*) AS batches,
    sum(requests) AS requests,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cost_usd) AS cost_usd,
    sum(list_cost_usd) AS list_cost_usd,
    sum(saved_usd) AS saved_usd,
    sum(unpriced_requests) AS unpriced_requests
FROM v_batch_costs
GROUP BY ALL;

CREATE OR REPLACE VIEW v_model_costs AS
SELECT
    provider,
    coalesce(model, '(unknown)') AS model,
    any_value(price_model) AS price_model,
    count(*) AS requests,
    count(*) FILTER (WHERE outcome = 'succeeded') AS succeeded,
    sum(input_tokens) AS input_tokens,
    sum(cached_input_tokens) AS cached_input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cost_usd) AS cost_usd,
    sum(list_cost_usd) AS list_cost_usd,
    sum(list_cost_usd) - sum(cost_usd) AS saved_usd,
    count(*) FILTER (WHERE cost_usd IS NULL AND input_tokens IS NOT NULL) AS unpriced_requests
FROM batch_results
GROUP BY ALL;

CREATE OR REPLACE VIEW v_provider_costs AS
SELECT
    provider,
    count(DISTINCT batch_id) AS batches,
    count(*) AS requests,
    count(*) FILTER (WHERE outcome = 'succeeded') AS succeeded,
    count(*) FILTER (WHERE outcome <> 'succeeded') AS not_succeeded,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cost_usd) AS cost_usd,
    sum(list_cost_usd) AS list_cost_usd,
    sum(list_cost_usd) - sum(cost_usd) AS saved_usd,
    count(*) FILTER (WHERE cost_usd IS NULL AND input_tokens IS NOT NULL) AS unpriced_requests
FROM batch_results
GROUP BY provider;

-- Cost by metadata tag (team, project, …): a batch counts once under each of its keys.
CREATE OR REPLACE VIEW v_tag_costs AS
SELECT
    m.key AS tag,
    m.value,
    c.provider,
    count(*) AS batches,
    sum(c.requests) AS requests,
    sum(c.cost_usd) AS cost_usd,
    sum(c.list_cost_usd) AS list_cost_usd,
    sum(c.unpriced_requests) AS unpriced_requests
FROM v_batch_costs c
JOIN batch_metadata m USING (provider, batch_id)
GROUP BY ALL;

-- The request errors across batches, most frequent first.
CREATE OR REPLACE VIEW v_request_errors AS
SELECT
    provider,
    outcome,
    coalesce(error_code, '(none)') AS error_code,
    count(*) AS requests,
    count(DISTINCT batch_id) AS batches,
    mode(error_message) AS top_message
FROM batch_results
WHERE outcome <> 'succeeded'
GROUP BY ALL;

-- What waits for a price: lines with usage but no cost, by reason, with their tokens (lines
-- without usage, e.g. expired or errored requests, have nothing to price).
CREATE OR REPLACE VIEW v_unpriced_models AS
SELECT
    provider,
    coalesce(model, '(unknown)') AS model,
    unpriced_reason,
    count(*) AS requests,
    count(DISTINCT batch_id) AS batches,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens
FROM batch_results
WHERE cost_usd IS NULL AND input_tokens IS NOT NULL
GROUP BY ALL;
