-- Daily summary by provider, model and endpoint (day of created_at, UTC).
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
    CAST(sum(request_total) AS BIGINT) AS requests_total,
    CAST(sum(request_completed) AS BIGINT) AS requests_completed,
    CAST(sum(request_failed) AS BIGINT) AS requests_failed,
    round(sum(request_completed) / nullif(sum(request_completed) + sum(request_failed), 0), 4)
        AS success_rate
FROM batches
GROUP BY ALL;
