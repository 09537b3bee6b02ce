-- Move the provider's watermark forward, never back (parameters: provider, newest,
-- updated_at, run_id).
INSERT INTO sync_state (provider, watermark, updated_at, run_id)
VALUES (?, ?, ?, ?)
ON CONFLICT (provider) DO UPDATE SET
    watermark = greatest(sync_state.watermark, excluded.watermark),
    updated_at = excluded.updated_at, run_id = excluded.run_id;
