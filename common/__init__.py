"""The bottom layer: error types and settings, used by every other layer (gateway, warehouse,
transforms' callers, the pipeline, the CLI and the flows) and importing none of them."""
