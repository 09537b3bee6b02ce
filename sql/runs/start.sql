-- A run of one provider begins: its row, every count at zero (parameters: run_id, provider,
-- mode, started_at, the watermark it listed down to). A re-run of the same id starts over.
INSERT OR REPLACE INTO sync_runs (run_id, provider, mode, started_at, status,
    watermark_used, pages, fetched, refetched_by_id, inserted, updated, unchanged,
    rejected, snapshots_appended, results_batches, result_lines, results_failed,
    deferred)
VALUES (?, ?, ?, ?, 'running', ?, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
