-- Per provider: the group's batches, how many repeat one of the group's (a batch listed in
-- two parts: the last part's version wins, which only the general merge knows), and whether
-- any row_key of the group is stored (the same batch, or a rare collision of two keys: either
-- way the general merge decides). Any of the last two sends the whole group there.
SELECT provider, count(*) AS batches, count(*) - count(DISTINCT batch_id) AS repeated,
       EXISTS (SELECT 1 FROM batches b SEMI JOIN stage_keys k ON b.row_key = k.row_key)
           AS stored
FROM stage_keys
GROUP BY provider;
