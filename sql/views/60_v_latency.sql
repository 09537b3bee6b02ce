-- Gateway latency (extra_fields.latency, ms) by provider and request type; list items carry
-- latency 0 and are left out.
CREATE OR REPLACE VIEW v_latency AS
SELECT
    provider,
    coalesce(request_type, '(none)') AS request_type,
    count(*) AS calls,
    quantile_cont(latency_ms, 0.5) AS p50_ms,
    quantile_cont(latency_ms, 0.95) AS p95_ms,
    quantile_cont(latency_ms, 0.99) AS p99_ms
FROM batches
WHERE latency_ms > 0
GROUP BY ALL;
