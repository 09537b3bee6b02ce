"""DuckDB: opening the file, migrations, set-based merges. The .sql lives in sql/."""

from batchlake.warehouse.db import connect, migrate
from batchlake.warehouse.load import ChunkCounts, Warehouse, open_read_only

__all__ = ["ChunkCounts", "Warehouse", "connect", "migrate", "open_read_only"]
