-- (A fragment: rendered into load.sql and reprice.sql.) The price of each (provider, model)
-- among the rows to price (temp table models_to_price): the prices file's rows before the
-- shipped table's (rank), the provider's own rows before '*' rows, the exact model before a
-- prefix, and, for the file's rows only, the longest priced model that is a prefix of it
-- followed by '-' (gpt-4o-mini-2024-07-18 -> gpt-4o-mini, never gpt-4o). The shipped table
-- has a row for each name lines sent, resolved by genai-prices' own matcher
-- (transforms/prices.py), so its rows match exactly. Its tiers come along (chosen_tiers).
CREATE OR REPLACE TEMP TABLE chosen_prices AS
SELECT provider, model, price_rank, price_provider, price_key, price_model, price_source,
       input, output, cache_read, cache_write, batch_input, batch_output, batch_cache_read,
       batch_cache_write
FROM (
    SELECT m.provider, m.model, p.rank AS price_rank, p.provider AS price_provider,
           p.model AS price_key, coalesce(p.price_model, p.model) AS price_model,
           p.source AS price_source,
           p.input, p.output, p.cache_read, p.cache_write, p.batch_input, p.batch_output,
           p.batch_cache_read, p.batch_cache_write,
           row_number() OVER (
               PARTITION BY m.provider, m.model
               ORDER BY p.rank, p.provider = '*', p.model <> m.model, length(p.model) DESC
           ) AS choice
    FROM models_to_price m
    JOIN prices p
      ON (p.provider = m.provider OR p.provider = '*')
     AND (p.model = m.model OR (p.rank = 0 AND starts_with(m.model, p.model || '-')))
)
WHERE choice = 1;

CREATE OR REPLACE TEMP TABLE chosen_tiers AS
SELECT c.provider, c.model, t.rate, t.start_tokens, t.value
FROM chosen_prices c
JOIN price_tiers t
  ON t.rank = c.price_rank AND t.provider = c.price_provider AND t.model = c.price_key
