-- batches.row_key: the merge's lookup key (see transforms/schema.py). Files from before it
-- gain the column and have it filled, so every stored batch is found again (a NULL key would
-- make its next sighting look new).
ALTER TABLE batches ADD COLUMN IF NOT EXISTS row_key BIGINT;

UPDATE batches SET row_key = {{row_key}} WHERE row_key IS NULL;
