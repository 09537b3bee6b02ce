-- (A fragment: rendered into load.sql and reprice.sql.) The price of each (provider, model) among the rows to price (temp table models_to_price):
-- the prices file's rows before the shipped table's (rank), the provider's own rows before
-- '*' rows, the exact model before a prefix, and the longest priced model that is a prefix
-- of it followed by '-' (gpt-4o-mini-2024-07-18 -> gpt-4o-mini, never gpt-4o).
CREATE OR REPLACE TEMP TABLE chosen_prices AS
SELECT provider, model, price_model, price_source, input, output, cache_read, cache_write,
       batch_input, batch_output
FROM (
    SELECT m.provider, m.model, p.model AS price_model, p.source AS price_source,
           p.input, p.output, p.cache_read, p.cache_write, p.batch_input, p.batch_output,
           row_number() OVER (
               PARTITION BY m.provider, m.model
               ORDER BY p.rank, p.provider = '*', p.model <> m.model, length(p.model) DESC
           ) AS choice
    FROM models_to_price m
    JOIN prices p
      ON (p.provider = m.provider OR p.provider = '*')
     AND (p.model = m.model OR starts_with(m.model, p.model || '-'))
)
WHERE choice = 1
