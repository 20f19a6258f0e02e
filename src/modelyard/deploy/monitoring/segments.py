"""Reading captured segments back: Parquet files in the blob store, indexed in ``monitor_segments``, as record
columns (numbers float64 with NaN for missing, text as object arrays, embeddings 2-D)."""

from __future__ import annotations

import io

import numpy as np

from modelyard.deploy.monitoring.store import MonitorStore

MAX_LOADED_ROWS = 200_000


def columns_from_parquet(data: bytes) -> dict[str, np.ndarray]:
    """Record columns from one Parquet file: numbers as float64 (NaN for missing), text as object arrays,
    embeddings (``e.``) as 2-D float32 (raw ``r.`` columns are left out: nothing here compares them)."""
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    return _columns(table)


def _columns(table) -> dict[str, np.ndarray]:
    import pyarrow as pa

    out: dict[str, np.ndarray] = {}
    for name in table.column_names:
        if name.startswith("r."):
            continue
        column = table[name]
        if name.startswith("e."):
            values = column.to_pylist()
            width = next((len(v) for v in values if v is not None), 0)
            out[name] = np.stack([np.asarray(v if v is not None else [np.nan] * width, np.float32)
                                  for v in values]) if values else np.zeros((0, width), np.float32)
        elif pa.types.is_integer(column.type) or pa.types.is_floating(column.type) \
                or pa.types.is_null(column.type):
            out[name] = column.to_numpy(zero_copy_only=False).astype(np.float64)
        else:
            out[name] = np.asarray(column.to_pylist(), dtype=object)
    return out


def load_columns(workspace, service: str, kind: str, since: float | None = None, until: float | None = None,
                 max_rows: int = MAX_LOADED_ROWS) -> dict[str, np.ndarray]:
    """The ``kind`` (``traffic``/``feedback``) records of ``service`` in ``[since, until]``, oldest first; at
    most the newest ``max_rows``."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    segments = MonitorStore(workspace.engine).segments(service, kind, since, until)
    tables, total = [], 0
    for segment in reversed(segments):  # newest first, so the cap keeps the newest
        tables.append(pq.read_table(io.BytesIO(workspace.blobs.read_bytes(segment.digest))))
        total += segment.rows
        if total >= max_rows:
            break
    if not tables:
        return {}
    table = pa.concat_tables(tables[::-1], promote_options="permissive")
    mask = None
    if since is not None:
        mask = pc.greater_equal(table["ts"], since)
    if until is not None:
        upper = pc.less_equal(table["ts"], until)
        mask = upper if mask is None else pc.and_(mask, upper)
    if mask is not None:
        table = table.filter(mask)
    table = table.take(pc.sort_indices(table, [("ts", "ascending")]))
    if table.num_rows > max_rows:
        table = table.slice(table.num_rows - max_rows)
    return _columns(table)


