"""Prefect orchestration: wiring only. The stages are plain functions in batchlake.pipeline."""
