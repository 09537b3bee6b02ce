-- Retries and request inputs (transforms/schema.py: retry_batches, retry_requests,
-- batch_requests, batch_inputs_state): what `batchlake retry` wrote and submitted, and the
-- opt-in analytics of input files (`batchlake sync --inputs`).
{{create:retry_batches}}
{{create:retry_requests}}
{{create:batch_requests}}
{{create:batch_inputs_state}}
