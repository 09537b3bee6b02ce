-- A run of one provider ends: its status, what it read and changed, its warnings or error
-- (parameters in the order of the SET list, then run_id and provider).
UPDATE sync_runs SET finished_at = ?, status = ?, pages = ?, fetched = ?,
    refetched_by_id = ?, inserted = ?, updated = ?, unchanged = ?, rejected = ?,
    snapshots_appended = ?, warnings = ?, error_message = ?, results_batches = ?,
    result_lines = ?, results_failed = ?, deferred = ?, plan = ?,
    results_backlog = ?
WHERE run_id = ? AND provider = ?;
