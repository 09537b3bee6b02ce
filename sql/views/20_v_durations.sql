-- Queue, processing and total time percentiles (seconds) by provider and model.
CREATE OR REPLACE VIEW v_durations AS
SELECT
    provider,
    coalesce(model_requested, '(unknown)') AS model,
    count(*) AS batches,
    count(total_s) AS finished,
    quantile_cont(queue_s, 0.5) AS queue_p50_s,
    quantile_cont(queue_s, 0.9) AS queue_p90_s,
    quantile_cont(queue_s, 0.99) AS queue_p99_s,
    quantile_cont(processing_s, 0.5) AS processing_p50_s,
    quantile_cont(processing_s, 0.9) AS processing_p90_s,
    quantile_cont(processing_s, 0.99) AS processing_p99_s,
    quantile_cont(total_s, 0.5) AS total_p50_s,
    quantile_cont(total_s, 0.9) AS total_p90_s,
    quantile_cont(total_s, 0.99) AS total_p99_s
FROM batches
GROUP BY ALL;
