"""DuckDB: opening the file, migrations, set-based merges. The .sql lives in sql/."""

from batchlake.warehouse.db import connect, migrate, reading
from batchlake.warehouse.load import ChunkCounts, Warehouse

__all__ = ["ChunkCounts", "Warehouse", "connect", "migrate", "reading"]
