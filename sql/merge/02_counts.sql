SELECT
    count(*) FILTER (WHERE change = 'inserted') AS inserted,
    count(*) FILTER (WHERE change = 'updated') AS updated,
    count(*) FILTER (WHERE change = 'unchanged') AS unchanged
FROM stage_changes;
