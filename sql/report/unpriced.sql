-- Models whose lines have usage but no price (see v_unpriced_models).
SELECT provider, model, unpriced_reason, requests, input_tokens, output_tokens
FROM v_unpriced_models
WHERE ($provider IS NULL OR provider = $provider)
ORDER BY requests DESC
LIMIT 10
