-- Daily summary by provider, model and endpoint (day of created_at, UTC).
-- Sums of counts stay HUGEINT (exact): counts are int64 and may be negative (Gemini), so an
-- int64 sum can overflow; a rate is DOUBLE. A view must never fail on stored data.
CREATE OR REPLACE VIEW v_daily_summary AS
SELECT
    CAST(date_trunc('day', created_at) AS DATE) AS day,
    provider,
    coalesce(model_requested, '(unknown)') AS model,
    coalesce(endpoint, '(unknown)') AS endpoint,
    count(*) AS batches,
    count(*) FILTER (WHERE status_norm = 'completed') AS completed,
    count(*) FILTER (WHERE status_norm = 'failed') AS failed,
    count(*) FILTER (WHERE status_norm = 'expired') AS expired,
    count(*) FILTER (WHERE status_norm = 'cancelled') AS cancelled,
    count(*) FILTER (WHERE NOT is_terminal) AS in_flight,
    sum(request_total) AS requests_total,
    sum(request_completed) AS requests_completed,
    sum(request_failed) AS requests_failed,
    round(CAST(sum(request_completed) AS DOUBLE)
          / nullif(CAST(sum(request_completed) AS DOUBLE) + sum(request_failed), 0), 4)
        AS success_rate
FROM batches
GROUP BY ALL;
