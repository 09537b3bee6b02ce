-- Requests (batch_requests, `sync --inputs`) joined to what they did (batch_results), for the
-- batches whose results are read (or that failed: no request of theirs got a line). A
-- custom_id with several lines counts once: succeeded if any line did.
CREATE OR REPLACE VIEW v_request_outcomes AS
WITH settled AS (
    SELECT b.provider, b.batch_id
    FROM batches b
    LEFT JOIN batch_results_state s USING (provider, batch_id)
    WHERE s.state = 'loaded' OR b.status_norm = 'failed'
), answers AS (
    SELECT provider, batch_id, custom_id, bool_or(outcome = 'succeeded') AS succeeded,
           sum(cost_usd) AS cost_usd
    FROM batch_results
    GROUP BY provider, batch_id, custom_id
), requests AS (
    SELECT q.provider, coalesce(q.model, '(unknown)') AS model, q.max_tokens, q.body_bytes,
           a.custom_id IS NOT NULL AS answered, coalesce(a.succeeded, false) AS succeeded,
           a.cost_usd
    FROM batch_requests q
    JOIN settled USING (provider, batch_id)
    LEFT JOIN answers a
        ON a.provider = q.provider AND a.batch_id = q.batch_id AND a.custom_id = q.custom_id
)
SELECT provider, model, max_tokens,
       count(*) AS requests,
       count(*) FILTER (WHERE succeeded) AS succeeded,
       count(*) FILTER (WHERE answered AND NOT succeeded) AS failed,
       count(*) FILTER (WHERE NOT answered) AS never_answered,
       round(CAST(count(*) FILTER (WHERE NOT succeeded) AS DOUBLE) / count(*), 4)
           AS error_rate,
       sum(cost_usd) AS cost_usd,
       round(avg(body_bytes), 1) AS mean_body_bytes
FROM requests
GROUP BY provider, model, max_tokens;

-- Every request of a settled batch that never got a result line.
CREATE OR REPLACE VIEW v_unanswered_requests AS
SELECT q.provider, q.batch_id, q.line, q.custom_id, q.model, q.max_tokens,
       b.status_norm AS batch_status
FROM batch_requests q
JOIN batches b USING (provider, batch_id)
LEFT JOIN batch_results_state s USING (provider, batch_id)
WHERE (s.state = 'loaded' OR b.status_norm = 'failed')
  AND NOT EXISTS (SELECT 1 FROM batch_results r
                  WHERE r.provider = q.provider AND r.batch_id = q.batch_id
                    AND r.custom_id = q.custom_id);
