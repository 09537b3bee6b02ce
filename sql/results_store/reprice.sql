-- Recompute every stored cost from the prices table (batchlake reprice): no request made.
CREATE OR REPLACE TEMP TABLE models_to_price AS
SELECT DISTINCT provider, model FROM batch_results WHERE model IS NOT NULL;

{{lookup}};

CREATE OR REPLACE TEMP TABLE repriced AS
{{priced_stored}};

DELETE FROM batch_results;

INSERT INTO batch_results ({{result_cols}}) SELECT {{result_cols}} FROM repriced;

DROP TABLE repriced;
