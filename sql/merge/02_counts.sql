-- What a load transaction changed, per provider (one transaction may merge several
-- providers' chunks: warehouse/load.py groups what is waiting into one commit).
SELECT
    provider,
    count(*) FILTER (WHERE change = 'inserted') AS inserted,
    count(*) FILTER (WHERE change = 'updated') AS updated,
    count(*) FILTER (WHERE change = 'unchanged') AS unchanged
FROM stage_changes
GROUP BY provider;
