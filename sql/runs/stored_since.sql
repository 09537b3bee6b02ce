-- Batches stored for the provider created at a time or later (parameters: provider, unix
-- seconds).
SELECT count(*) FROM batches WHERE provider = ? AND created_at >= to_timestamp(?);
