-- The finished batches of one provider a retry selects: by id, by creation time; each may be
-- the root of a chain of retries or a retry itself (the caller walks the chain).
SELECT batch_id
FROM batches
WHERE provider = $provider AND is_terminal
  AND status_norm IN ('completed', 'expired', 'cancelled', 'failed')
  AND (CAST($batch_ids AS VARCHAR[]) IS NULL
       OR batch_id IN (SELECT unnest(CAST($batch_ids AS VARCHAR[]))))
  AND (CAST($since AS TIMESTAMPTZ) IS NULL OR created_at >= $since)
ORDER BY created_at, batch_id
