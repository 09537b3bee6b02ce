-- The provider's watermark: the newest created_at of its last finished listing (none yet:
-- no row).
SELECT watermark FROM sync_state WHERE provider = ?;
