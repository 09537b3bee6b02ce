"""Pure polars transforms: raw gateway JSON in, typed frames out. No I/O here."""

from batchlake.transforms.derive import STATUS_VOCABULARY, TERMINAL_STATUSES
from batchlake.transforms.flatten import FlatFrames, flatten_objects
from batchlake.transforms.schema import TABLES, markdown_docs

__all__ = [
    "STATUS_VOCABULARY",
    "TABLES",
    "TERMINAL_STATUSES",
    "FlatFrames",
    "flatten_objects",
    "markdown_docs",
]
