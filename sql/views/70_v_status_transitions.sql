-- Status history from batch_snapshots: each status a batch entered, when, and how long it
-- stayed (until the next observed status; NULL while it is still there).
CREATE OR REPLACE VIEW v_status_transitions AS
WITH ordered AS (
    SELECT provider, batch_id, observed_at, status_norm,
           lag(status_norm) OVER w AS prev_status
    FROM batch_snapshots
    WINDOW w AS (PARTITION BY provider, batch_id ORDER BY observed_at)
), entered AS (
    SELECT provider, batch_id, prev_status AS from_status, status_norm AS to_status,
           observed_at AS entered_at
    FROM ordered
    WHERE prev_status IS DISTINCT FROM status_norm
)
SELECT provider, batch_id, from_status, to_status AS status, entered_at,
       lead(entered_at) OVER (PARTITION BY provider, batch_id ORDER BY entered_at) AS left_at,
       date_diff('second', entered_at,
                 lead(entered_at) OVER (PARTITION BY provider, batch_id ORDER BY entered_at))
           AS seconds_in_status
FROM entered;

-- Time spent in each status, by provider.
CREATE OR REPLACE VIEW v_status_time AS
SELECT provider, status, count(*) AS visits,
       quantile_cont(seconds_in_status, 0.5) AS p50_s,
       avg(seconds_in_status) AS avg_s
FROM v_status_transitions
WHERE seconds_in_status IS NOT NULL
GROUP BY ALL;
