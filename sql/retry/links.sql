-- The links of retry chains of one provider: (child, parent). A retry batch names its source
-- in its metadata (batchlake_retry_of, seen by a sync); batchlake's own record knows it at
-- once (Anthropic batches carry no metadata). A submit that began and was never recorded is
-- a node of its own ('in-doubt:<run>/<file>'), until a sync shows the batch it made.
SELECT batch_id AS child, value AS parent
FROM batch_metadata
WHERE provider = $provider AND key = 'batchlake_retry_of'
UNION
SELECT retry_batch_id, source_batch_id
FROM retry_batches
WHERE provider = $provider AND submit_state = 'submitted' AND retry_batch_id IS NOT NULL
UNION
SELECT 'in-doubt:' || r.run_id || '/' || r.file_name, r.source_batch_id
FROM retry_batches r
WHERE r.provider = $provider AND r.submit_state = 'uploading'
  AND NOT EXISTS (
      SELECT 1 FROM batch_metadata m
      JOIN batch_metadata s ON s.provider = m.provider AND s.batch_id = m.batch_id
      WHERE m.provider = r.provider AND m.key = 'batchlake_retry_run' AND m.value = r.run_id
        AND s.key = 'batchlake_retry_of' AND s.value = r.source_batch_id)
