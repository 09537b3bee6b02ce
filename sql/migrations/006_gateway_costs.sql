-- The gateway's own cost of each finished batch beside batchlake's (batchlake reconcile;
-- transforms/schema.py: gateway_batch_costs).
{{create:gateway_batch_costs}}
