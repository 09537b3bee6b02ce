-- One batch's requests (the registered incoming_requests view over its staged parts)
-- replace what was stored for it, in the caller's transaction.
DELETE FROM batch_requests WHERE provider = $provider AND batch_id = $batch_id;
INSERT INTO batch_requests BY NAME SELECT * FROM incoming_requests;
