-- Record what this run learnt about each batch's results (view incoming_states): loaded,
-- 'retry' with its backoff, or 'unavailable'. Attempts add up across runs.
INSERT INTO batch_results_state AS s (provider, batch_id, state, lines, rejected_lines,
    parse_errors, attempts, last_error, last_status, last_attempt_at, next_attempt_at,
    loaded_at, run_id, same_failures)
SELECT provider, batch_id, state, lines, rejected_lines, parse_errors, 1, last_error,
       last_status, attempted_at,
       CASE WHEN state = 'retry' THEN attempted_at END,
       CASE WHEN state = 'loaded' THEN attempted_at END, run_id, same_failures
FROM incoming_states
ON CONFLICT (provider, batch_id) DO UPDATE SET
    state = excluded.state,
    lines = CASE WHEN excluded.state = 'loaded' THEN excluded.lines ELSE s.lines END,
    rejected_lines = CASE WHEN excluded.state = 'loaded' THEN excluded.rejected_lines
                          ELSE s.rejected_lines END,
    parse_errors = CASE WHEN excluded.state = 'loaded' THEN excluded.parse_errors
                        ELSE s.parse_errors END,
    attempts = s.attempts + 1,
    last_error = excluded.last_error,
    last_status = excluded.last_status,
    last_attempt_at = excluded.last_attempt_at,
    -- a body that came whole and was unreadable with the same error as last time will fail
    -- the same way again: counted, so that its retries wait far longer (below)
    same_failures = CASE WHEN excluded.same_failures > 0 AND s.last_error = excluded.last_error
                         THEN coalesce(s.same_failures, 1) + 1
                         ELSE excluded.same_failures END,
    -- a retry waits longer each time: the next run, then 10, 20, 40 minutes … up to a day,
    -- the same unreadable body a second time: a week, doubling up to 30 days
    next_attempt_at = CASE WHEN excluded.state = 'retry' THEN excluded.last_attempt_at
        + to_seconds(CASE
            WHEN excluded.same_failures > 0 AND s.last_error = excluded.last_error
                THEN least(2592000, 604800 * pow(2, least(coalesce(s.same_failures, 1) - 1, 4)))
            ELSE least(86400, 600 * pow(2, least(s.attempts, 10)) / 2) END) END,
    loaded_at = CASE WHEN excluded.state = 'loaded' THEN excluded.last_attempt_at
                     ELSE s.loaded_at END,
    run_id = excluded.run_id;
