-- Batches stored for the provider, those without created_at included.
SELECT count(*) FROM batches WHERE provider = ?;
