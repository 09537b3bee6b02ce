-- Batch results and cost (transforms/schema.py: batch_results, batch_results_state, prices).
{{create:batch_results}}
{{create:batch_results_state}}
{{create:prices}}
