-- Child tables are replaced per batch, and only when that batch's errors / metadata changed.
DELETE FROM batch_errors USING stage_changes c
WHERE c.errors_changed AND batch_errors.provider = c.provider
  AND batch_errors.batch_id = c.batch_id;

INSERT INTO batch_errors
SELECT e.* FROM incoming_errors e
JOIN stage_changes c ON c.provider = e.provider AND c.batch_id = e.batch_id
WHERE c.errors_changed;

DELETE FROM batch_metadata USING stage_changes c
WHERE c.metadata_changed AND batch_metadata.provider = c.provider
  AND batch_metadata.batch_id = c.batch_id;

INSERT INTO batch_metadata
SELECT m.* FROM incoming_metadata m
JOIN stage_changes c ON c.provider = m.provider AND c.batch_id = m.batch_id
WHERE c.metadata_changed;
