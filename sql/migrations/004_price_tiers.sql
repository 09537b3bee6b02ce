-- Tiered rates of the price rows (transforms/schema.py: price_tiers); prices gains
-- price_model through the schema's evolution.
{{create:price_tiers}}
