-- Child tables are replaced per batch, and only when that batch's errors / metadata changed;
-- the rows come from the part whose version of the batch was kept.
-- A new batch has no stored children, so only changed batches are deleted from (a delete
-- scans the whole child table; a chunk of new batches skips it).
-- when: updated
DELETE FROM batch_errors USING stage_changes c
WHERE c.change = 'updated' AND c.errors_changed AND batch_errors.provider = c.provider
  AND batch_errors.batch_id = c.batch_id;

-- when: inserted, updated
INSERT INTO batch_errors
SELECT e.* EXCLUDE (part) FROM incoming_errors e
JOIN stage_changes c ON c.provider = e.provider AND c.batch_id = e.batch_id AND c.part = e.part
WHERE c.errors_changed;

-- when: updated
DELETE FROM batch_metadata USING stage_changes c
WHERE c.change = 'updated' AND c.metadata_changed AND batch_metadata.provider = c.provider
  AND batch_metadata.batch_id = c.batch_id;

-- when: inserted, updated
INSERT INTO batch_metadata
SELECT m.* EXCLUDE (part) FROM incoming_metadata m
JOIN stage_changes c ON c.provider = m.provider AND c.batch_id = m.batch_id AND c.part = m.part
WHERE c.metadata_changed;
