-- What a retry needs to know of each batch of the chains it covers: where its input is, how
-- it ran, whether its results are read, and how many of its requests have a line and a
-- succeeded line (a batch whose every request succeeded needs no input read).
WITH wanted AS (
    SELECT unnest(CAST($batch_ids AS VARCHAR[])) AS batch_id
), lines AS (
    SELECT r.batch_id, count(DISTINCT r.custom_id) AS answered,
           count(DISTINCT r.custom_id) FILTER (WHERE r.outcome = 'succeeded') AS succeeded
    FROM batch_results r
    WHERE r.provider = $provider AND r.batch_id IN (SELECT batch_id FROM wanted)
    GROUP BY r.batch_id
)
SELECT b.batch_id, b.status_norm, b.is_terminal, b.created_at, b.input_file_id, b.endpoint,
       b.completion_window, b.model_requested, CAST(b.metadata AS VARCHAR) AS metadata,
       b.request_total, s.state AS results_state, s.last_error AS results_error,
       coalesce(l.answered, 0) AS answered, coalesce(l.succeeded, 0) AS succeeded
FROM batches b
LEFT JOIN batch_results_state s USING (provider, batch_id)
LEFT JOIN lines l USING (batch_id)
WHERE b.provider = $provider AND b.batch_id IN (SELECT batch_id FROM wanted)
