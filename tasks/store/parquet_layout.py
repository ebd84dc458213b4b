"""How the store lays out a pipeline table in Parquet: compression, dictionaries, statistics
and row groups, chosen per column from what the column holds."""
from __future__ import annotations

from typing import Any

import pyarrow as pa

from tasks.store.dataset import SPEC_KEY, spec_of, tensor_dtype


def write_settings(table: pa.Table) -> dict[str, Any]:
    """``pyarrow.parquet.write_table`` settings for a pipeline table (the store writes with them).
    A streamed table's (read again by every later stage, a row group at a time) trade size for
    speed: LZ4, and a dictionary for the split column only (row ids and targets rarely repeat)."""
    if SPEC_KEY in (table.schema.metadata or {}) and spec_of(table).streamed:
        return {"compression": "lz4", "use_dictionary": [n for n in table.column_names if n == "split"],
                "write_statistics": _small_columns(table), "row_group_size": row_group_rows(table)}
    return {"compression": _compression(table), "use_dictionary": _repeating_columns(table),
            "write_statistics": _small_columns(table), "row_group_size": row_group_rows(table)}


ROW_GROUP_BYTES = 8 * 2**20


def row_group_rows(table: pa.Table) -> int:
    """Rows per row group. A table of tensors (images) gets groups of ``ROW_GROUP_BYTES``, so
    that a reader of one split (the test images) decodes and filters a group at a time instead
    of the whole table. A narrow table is one group: its splits are small to read whole, and
    groups would only cost time at each write."""
    if not any(pa.types.is_fixed_size_binary(f.type) for f in table.schema):
        return max(1, table.num_rows)
    return max(1024, ROW_GROUP_BYTES // max(1, table.nbytes // max(1, table.num_rows)))


def _compression(table: pa.Table) -> str:
    """LZ4 for float tensors, zstd otherwise. Standardised pixels compress by about a third under
    LZ4 for little encoding time (zstd saves a little more at twice the time), which is faster
    overall where putting fresh pages in the page cache costs more than compressing them; raw
    8-bit images compress well under zstd."""
    floats = any(dtype is not None and dtype.kind == "f" for dtype in map(tensor_dtype, table.schema))
    return "lz4" if floats else "zstd"


def _small_columns(table: pa.Table) -> list[str]:
    """Columns worth statistics: everything but tensors."""
    return [f.name for f in table.schema if not pa.types.is_fixed_size_binary(f.type)]


def _repeating_columns(table: pa.Table) -> list[str]:
    """Columns worth dictionary encoding: not tensors, not float features. A float feature's
    values are nearly all distinct, so Parquet builds a dictionary only to drop it: time spent
    at every write for the same file size."""
    features = set(spec_of(table).features) if SPEC_KEY in (table.schema.metadata or {}) else set()
    return [name for name in _small_columns(table)
            if not (name in features and pa.types.is_floating(table.schema.field(name).type))]
