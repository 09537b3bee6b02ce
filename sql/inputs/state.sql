-- Where one batch's input stands (loaded, retry, unavailable), in the caller's transaction.
INSERT INTO batch_inputs_state AS t (provider, batch_id, state, lines, rejected_lines,
    last_error, last_status, attempts, loaded_at, run_id)
VALUES ($provider, $batch_id, $state, $lines, $rejected, $error, $status, 1, $at, $run_id)
ON CONFLICT (provider, batch_id) DO UPDATE SET state = excluded.state,
    lines = excluded.lines, rejected_lines = excluded.rejected_lines,
    last_error = excluded.last_error, last_status = excluded.last_status,
    attempts = t.attempts + 1, loaded_at = excluded.loaded_at, run_id = excluded.run_id
