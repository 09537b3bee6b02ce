-- Load staged result lines (view incoming_results) priced; the batches they belong to are
-- replaced whole ($1: run id), so a re-read never counts a line twice.
CREATE OR REPLACE TEMP TABLE models_to_price AS
SELECT DISTINCT provider, model FROM incoming_results WHERE model IS NOT NULL;

{{lookup}};

DELETE FROM batch_results
WHERE (provider, batch_id) IN (SELECT provider, batch_id FROM incoming_batches WHERE replace);

INSERT INTO batch_results ({{result_cols}})
{{priced_incoming}};
