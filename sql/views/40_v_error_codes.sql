-- Error codes by provider: how often, the commonest message, and the batches they hit.
CREATE OR REPLACE VIEW v_error_codes AS
SELECT
    provider,
    coalesce(code, '(none)') AS code,
    count(*) AS errors,
    count(DISTINCT batch_id) AS batches,
    mode(message) AS top_message,
    list(DISTINCT batch_id ORDER BY batch_id)[1:5] AS example_batches
FROM batch_errors
GROUP BY ALL;
