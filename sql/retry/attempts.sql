-- Each request of some chains of retries (the registered retry_tree: root, batch_id, depth,
-- settled) and what its latest attempt in its chain did. A request is in an attempt when that batch has a result
-- line for it, or batchlake submitted it there; the latest attempt is the deepest (a tie, two
-- submits of the same failures, goes to the greater id). A request that succeeded anywhere in
-- the chain is done. settled: 'loaded' (results read), 'failed' (the batch failed: no
-- output), 'in_flight' (not finished, or not seen yet), 'waiting' (results not read yet).
WITH lines AS (
    SELECT t.root, t.depth, t.batch_id, t.settled, r.custom_id,
           bool_or(r.outcome = 'succeeded') AS ok,
           arg_max(r.outcome, r.line) AS outcome,
           arg_max(r.error_code, r.line) AS error_code,
           arg_max(r.model, r.line) AS model
    FROM retry_tree t
    JOIN batch_results r ON r.provider = $provider AND r.batch_id = t.batch_id
    WHERE r.custom_id IS NOT NULL
    GROUP BY t.root, t.depth, t.batch_id, t.settled, r.custom_id
), sent AS (
    SELECT DISTINCT t.root, t.depth, t.batch_id, t.settled, q.custom_id
    FROM retry_requests q
    JOIN retry_batches f ON f.run_id = q.run_id AND f.file_name = q.file_name
    JOIN retry_tree t ON t.batch_id = CASE
        WHEN f.submit_state = 'submitted' THEN f.retry_batch_id
        WHEN f.submit_state = 'uploading' THEN 'in-doubt:' || f.run_id || '/' || f.file_name END
    WHERE q.provider = $provider
), attempts AS (
    SELECT root, depth, batch_id, settled, custom_id, ok, outcome, error_code, model FROM lines
    UNION ALL
    SELECT s.root, s.depth, s.batch_id, s.settled, s.custom_id, false, NULL, NULL, NULL
    FROM sent s
    WHERE NOT EXISTS (SELECT 1 FROM lines l
                      WHERE l.root = s.root AND l.batch_id = s.batch_id
                        AND l.custom_id = s.custom_id)
), ranked AS (
    SELECT *, bool_or(ok) OVER (PARTITION BY root, custom_id) AS any_ok,
           row_number() OVER (PARTITION BY root, custom_id
                              ORDER BY depth DESC, batch_id DESC) AS n
    FROM attempts
)
SELECT root, custom_id,
       CASE WHEN any_ok THEN 'succeeded'
            WHEN settled IN ('in_flight', 'waiting') THEN settled
            ELSE 'failed' END AS state,
       batch_id,
       CASE WHEN any_ok THEN NULL
            WHEN settled = 'failed' THEN 'batch_failed'
            WHEN outcome IS NULL OR outcome = 'succeeded' THEN 'no_result_line'
            ELSE outcome END AS reason,
       error_code, model
FROM ranked
WHERE n = 1
