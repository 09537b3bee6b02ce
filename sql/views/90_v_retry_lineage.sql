-- Retry batches and where they come from: every batch made by `batchlake retry --submit`
-- (known from its metadata, batchlake_retry_of, once a sync has seen it; at once from
-- batchlake's own record, which also covers Anthropic, whose batches carry no metadata),
-- its source batch, the first batch of its chain, and how its requests fared.
CREATE OR REPLACE VIEW v_retry_lineage AS
WITH RECURSIVE links AS (
    SELECT provider, batch_id AS retry_batch_id, value AS source_batch_id
    FROM batch_metadata WHERE key = 'batchlake_retry_of'
    UNION
    SELECT provider, retry_batch_id, source_batch_id
    FROM retry_batches WHERE submit_state = 'submitted' AND retry_batch_id IS NOT NULL
), chain AS (
    SELECT provider, retry_batch_id, source_batch_id AS root_batch_id, 1 AS depth FROM links
    UNION ALL
    SELECT c.provider, c.retry_batch_id, l.source_batch_id, c.depth + 1
    FROM chain c
    JOIN links l ON l.provider = c.provider AND l.retry_batch_id = c.root_batch_id
    WHERE c.depth < 50
), roots AS (
    SELECT provider, retry_batch_id, arg_max(root_batch_id, depth) AS root_batch_id,
           max(depth) AS depth
    FROM chain GROUP BY provider, retry_batch_id
), lines AS (
    SELECT r.provider, r.batch_id, count(DISTINCT r.custom_id) AS requests_answered,
           count(DISTINCT r.custom_id) FILTER (WHERE r.outcome = 'succeeded') AS succeeded,
           sum(r.cost_usd) AS cost_usd
    FROM batch_results r
    WHERE (r.provider, r.batch_id) IN (SELECT (provider, retry_batch_id) FROM links)
    GROUP BY r.provider, r.batch_id
)
SELECT l.provider, l.retry_batch_id, l.source_batch_id, o.root_batch_id, o.depth,
       f.run_id, f.file_name, f.requests AS requests_sent, f.estimated_cost_usd,
       f.submitted_at, b.status_norm AS status, b.created_at,
       n.requests_answered, n.succeeded, n.requests_answered - n.succeeded AS failed,
       n.cost_usd, src.status_norm AS source_status
FROM links l
JOIN roots o USING (provider, retry_batch_id)
LEFT JOIN retry_batches f
    ON f.provider = l.provider AND f.retry_batch_id = l.retry_batch_id
       AND f.submit_state = 'submitted'
LEFT JOIN batches b ON b.provider = l.provider AND b.batch_id = l.retry_batch_id
LEFT JOIN batches src ON src.provider = l.provider AND src.batch_id = l.source_batch_id
LEFT JOIN lines n ON n.provider = l.provider AND n.batch_id = l.retry_batch_id;
