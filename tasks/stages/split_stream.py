"""The split stage a row group at a time, for tables larger than memory.

The in-memory split (``tasks/stages/split.py``) draws the course's seeded permutation over all
rows at once; a table too large for that is split by ``hash_labels`` instead: each row's split
from a hash of its row number and the split seed (the spec's ``test_seed``), the same seed
giving the same split, row group by row group. The index's spec records the rule
(``SplitRule("hash")``). A table's own ``split`` column is kept as it is; where it names no
valid rows, its train rows are divided by the same hash (a quarter to valid, as in memory).
"""
from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from tasks.stages.streamed_stats import VALID_SHARE, batches, hash_labels, hash_unit
from tasks.store.dataset import SplitIndex, SplitRule, spec_of, to_arrow
from tasks.store.sources import read_schema


def split_batches(raw_path: str, batch_rows: int | None = None) -> Iterator[pa.RecordBatch]:
    """The split index of the raw artifact at ``raw_path``, in its row order, a group at a time."""
    raw_spec = spec_of(read_schema(raw_path))
    own = raw_spec.split.method == "given"
    rule = SplitRule("hash", test_seed=raw_spec.split.test_seed, valid_seed=raw_spec.split.valid_seed)
    spec = raw_spec.replace(split=rule if not own else raw_spec.split)
    needs_valid = own and not _names_valid(raw_path, batch_rows)
    columns = ["row_id", *(["split"] if own else []), raw_spec.target]
    for rows in batches(raw_path, columns, batch_rows):
        row_id = rows.column("row_id").to_numpy()
        if own:
            labels = rows.column("split").to_numpy(zero_copy_only=False).astype(object)
            if needs_valid:  # a quarter of the train rows, by the hash (valid_seed), as in memory
                moved = (labels == "train") & (hash_unit(row_id, rule.valid_seed) < VALID_SHARE)
                labels[moved] = "valid"
        else:
            labels = hash_labels(row_id, rule.test_seed)
        index = SplitIndex(spec, rows.column(raw_spec.target).to_numpy(zero_copy_only=False), row_id, labels)
        yield from to_arrow(index).to_batches()


def _names_valid(raw_path: str, batch_rows: int | None) -> bool:
    return any(pc.any(pc.equal(b.column(0), "valid")).as_py() for b in batches(raw_path, ["split"], batch_rows))
