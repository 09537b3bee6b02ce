"""Raw gateway JSON objects -> typed polars frames, the exact path (no I/O).

Most objects take the column-wise fast path (``fast_columns.py``); the few it flags go
through the exact per-object validator (``exact_validator.py``), which makes them rows or
sends them to ``rejects`` with a reason. The frames are then assembled as on the typed path
(``batch_frames.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from batchlake.common import paused_gc
from batchlake.transforms.batch_fields import metadata_cells
from batchlake.transforms.batch_frames import FlatFrames, frames
from batchlake.transforms.exact_validator import Reject, reject_payload, validated_row
from batchlake.transforms.fast_columns import fast_columns


def flatten_objects(
    objects: Iterable[Any],
    provider: str,
    *,
    as_of: datetime,
    store_raw: bool = False,
) -> FlatFrames:
    """Turn raw batch objects of one provider into typed frames plus rejects.

    Duplicates (same id twice in the input) keep the last occurrence, as the gateway's
    latest word on that batch. Most objects take a column-wise fast path; the few it flags
    go through ``validated_row``, the exact per-object validator, which decides and gives
    the reason.
    """
    objs = list(objects)
    latest: dict[str, int] = {}
    for i, o in enumerate(objs):
        bid = o.get("id") if type(o) is dict else None
        if type(bid) is str and bid:
            latest[bid] = i
    kept = []
    for i, o in enumerate(objs):
        bid = o.get("id") if type(o) is dict else None
        if not (type(bid) is str and bid and latest[bid] != i):
            kept.append(o)
    duplicates = len(objs) - len(kept)
    rejects: list[dict[str, Any]] = []
    # Many small dicts: the cyclic GC would rescan them all on every generation-2 pass.
    with paused_gc():
        cols, suspect = fast_columns(kept, store_raw)
        rejected: set[int] = set()
        for i in sorted(suspect):
            o = kept[i]
            try:
                row, errs, meta = validated_row(o, store_raw)
            except Reject as r:
                bid = o.get("id") if type(o) is dict else None
                rejects.append({"provider": provider,
                                "batch_id": bid if type(bid) is str else None,
                                "reason": str(r), "payload": reject_payload(o)})
                rejected.add(i)
                for values in cols.values():
                    values[i] = None
                continue
            for name, values in cols.items():
                if name not in ("_errors", "_meta"):
                    values[i] = row[name]
            cols["_errors"][i], cols["_meta"][i] = errs, meta
        # A rejected object's _errors and _meta are None: it has no child rows.
        error_rows = [er for ers in cols.pop("_errors") if ers for er in ers]
        cols["metadata"], metadata_rows = metadata_cells(cols["batch_id"], cols.pop("_meta"))
    return frames(cols, rejected, provider, as_of, errors=error_rows, metadata=metadata_rows,
                  rejects=rejects, duplicates=duplicates)
