-- A run that writes retry files replaces what earlier runs wrote and never submitted for the
-- same chains (a file that was not submitted made no batch: nothing to remember of it).
DELETE FROM retry_requests q
WHERE q.provider = $provider AND q.root_batch_id IN (SELECT unnest(CAST($roots AS VARCHAR[])))
  AND EXISTS (SELECT 1 FROM retry_batches f
              WHERE f.run_id = q.run_id AND f.file_name = q.file_name
                AND f.submit_state = 'written');
DELETE FROM retry_batches
WHERE provider = $provider AND submit_state = 'written'
  AND root_batch_id IN (SELECT unnest(CAST($roots AS VARCHAR[])));
