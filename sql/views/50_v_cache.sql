-- Cache effectiveness by provider, model and hit type (batches with cache_debug only).
CREATE OR REPLACE VIEW v_cache AS
SELECT
    provider,
    coalesce(model_requested, '(unknown)') AS model,
    CASE WHEN cache_hit THEN coalesce(cache_hit_type, '(unknown)') ELSE 'miss' END AS hit_type,
    count(*) AS batches,
    count(*) FILTER (WHERE cache_hit) AS hits,
    round(count(*) FILTER (WHERE cache_hit) / count(*), 4) AS hit_rate,
    -- HUGEINT: an int64 sum of token counts can overflow.
    coalesce(sum(cache_input_tokens) FILTER (WHERE cache_hit), 0) AS input_tokens_from_cache
FROM batches
WHERE cache_hit IS NOT NULL
GROUP BY ALL;

-- Semantic hits: how far above the threshold the similarity was, in 0.02 buckets.
CREATE OR REPLACE VIEW v_cache_similarity AS
SELECT
    provider,
    floor((cache_similarity - cache_threshold) / 0.02) * 0.02 AS margin_bucket,
    count(*) AS hits,
    avg(cache_similarity) AS avg_similarity,
    avg(cache_threshold) AS avg_threshold
FROM batches
WHERE cache_hit AND cache_hit_type = 'semantic' AND cache_similarity IS NOT NULL
GROUP BY ALL;
