-- The core tables. Their columns come from transforms/schema.py (the one schema definition).
{{create:batches}}
{{create:batch_errors}}
{{create:batch_metadata}}
{{create:batch_snapshots}}
{{create:sync_runs}}
{{create:rejects}}
{{create:sync_state}}
