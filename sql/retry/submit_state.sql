-- One retry file's submit: the state, and what the gateway gave (each step committed on its
-- own, so a crash leaves the truth: 'uploading' means a batch may exist).
UPDATE retry_batches
SET submit_state = $state, uploaded_file_id = coalesce($uploaded_file_id, uploaded_file_id),
    retry_batch_id = $retry_batch_id, submitted_at = $submitted_at, submit_error = $error
WHERE run_id = $run_id AND file_name = $file_name
