"""One in-memory shape for every dataset, and its one Parquet layout: columns, write settings,
and the in-process cache of recent tables. The store keeps bytes, hashes and sidecars.

A ``Frame`` is features ``X`` (rows x features, flat), target ``y``, a ``row_id`` per
row (its position in the raw artifact, so splits can be checked for overlap) and an
optional ``split`` label. Its ``DatasetSpec`` travels inside the Parquet schema
metadata, so every artifact says what it holds (task, target, feature names, image
shape, known ranges) without a side channel.

Parquet layout: ``row_id``, ``split`` (optional), the target column, then either one
column per named feature (tables) or a single tensor column ``image`` (images). A tensor
column is fixed-size binary: each row's pixels as their bytes, C order, with the numpy
dtype in the field's metadata and the shape in the spec (the way Petastorm stores
ndarrays). Parquet has no uint8, so a list<uint8> column is widened to one INT32 per
pixel with repetition levels, several times slower to write and read than the bytes, and a
larger file. Read one back with ``tensor_column(table, "image")``.
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections import OrderedDict
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.core.allocator import tune_memory
from tasks.store.sources import read_schema, readable

# Arrow's default jemalloc pool keeps freed memory for reuse: in one process that runs every
# stage, that held the flow's peak memory hundreds of MB higher. The system allocator returns it.
pa.set_memory_pool(pa.system_memory_pool())

tune_memory()  # glibc's heap and numpy's huge-page advice (tasks/core/allocator.py)

SPEC_KEY = b"pipeline.dataset"
DTYPE_KEY = b"numpy.dtype"  # field metadata of a tensor column
IMAGE_COLUMN = "image"
SPLITS = ("train", "valid", "test")


@dataclasses.dataclass(frozen=True)
class SplitRule:
    """How ``tasks/stages/split.py`` splits a dataset: ``random`` (seeded train_test_split for test, then
    for valid), ``head`` (the table's own test rows; the first ``valid_size`` train rows become
    valid) or ``given`` (the table's own split column)."""

    method: str = "random"
    test_seed: int = 7
    valid_seed: int = 11
    valid_size: int | None = None
    sizes: dict[str, int] | None = None  # the split sizes validation expects, when known


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is: the facts validation and training need."""

    name: str
    task: str  # "classification" | "regression"
    target: str
    features: tuple[str, ...]
    image_shape: tuple[int, ...] | None = None  # set for image data
    classes: tuple[int, ...] | None = None  # known label set (classification)
    target_range: tuple[float, float] | None = None
    feature_ranges: dict[str, tuple[float, float]] | None = None  # per feature, or "*" for all
    rows: int | None = None  # exact row count when known
    split: SplitRule = SplitRule()
    # (mean, scale) of the target on the train rows, when a regressor learns it standardised
    # (set by the scale stage; the stored model answers in the target's own units)
    target_scaling: tuple[float, float] | None = None
    categorical: tuple[str, ...] = ()  # text feature columns (a Frame's ``text``), one-hot encoded by scaling
    class_names: tuple[str, ...] | None = None  # a text label column's labels, in the order of codes 0..K-1
    missing: str = "refuse"  # the declared policy for missing feature values: refuse, or impute (train-only)
    drop_constant: bool = False  # drop the features that are constant on the train rows when scaling
    encoded: tuple[str, ...] = ()  # scaled data: the trailing feature columns that are one-hot categories
    streamed: bool = False  # read and written a row group at a time by every stage (a table larger than memory)

    @property
    def is_image(self) -> bool:
        return self.image_shape is not None

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return self.image_shape or (len(self.features),)

    def feature_range(self, name: str) -> tuple[float, float]:
        """A feature's known (low, high): its own, the one for all ("*"), or none (infinite)."""
        return (self.feature_ranges or {}).get(name, (self.feature_ranges or {}).get("*", (-np.inf, np.inf)))

    def to_json(self) -> str:
        fields = dataclasses.asdict(self)
        for name, default in _LATER_FIELDS.items():  # written only when set: older specs keep their bytes
            if fields[name] == default:
                del fields[name]
        return json.dumps(fields, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> DatasetSpec:
        raw = json.loads(text)
        for key in ("features", "image_shape", "classes", "target_range", "target_scaling", "categorical",
                    "class_names", "encoded"):
            if raw.get(key) is not None:
                raw[key] = tuple(raw[key])
        if raw.get("feature_ranges"):
            raw["feature_ranges"] = {k: tuple(v) for k, v in raw["feature_ranges"].items()}
        raw["split"] = SplitRule(**raw.get("split") or {})
        return cls(**raw)

    def replace(self, **changes: Any) -> DatasetSpec:
        return dataclasses.replace(self, **changes)


_LATER_FIELDS = {"target_scaling": None, "categorical": (), "class_names": None, "missing": "refuse",
                 "drop_constant": False, "encoded": (), "streamed": False}  # as dataclasses.asdict gives their defaults


@dataclasses.dataclass
class Frame:
    """Rows of one dataset in memory: flat features, target, row ids, split labels."""

    spec: DatasetSpec
    X: np.ndarray
    y: np.ndarray
    row_id: np.ndarray
    split: np.ndarray | pa.Array | None = None  # Arrow text where a streamed stage builds it
    text: np.ndarray | None = None  # rows x ``spec.categorical``: the text features (None where missing)

    def __len__(self) -> int:
        return len(self.y)

    def take(self, mask_or_index: np.ndarray) -> Frame:
        split = None if self.split is None else self.split[mask_or_index]
        text = None if self.text is None else self.text[mask_or_index]
        return Frame(self.spec, self.X[mask_or_index], self.y[mask_or_index],
                     self.row_id[mask_or_index], split, text)

    def part(self, name: str) -> Frame:
        """The rows of one split ("train", "valid" or "test"); a view when they are contiguous."""
        if self.split is None:
            raise ValueError(f"{self.spec.name}: this frame has no split column")
        rows = np.flatnonzero(self.split == name)
        if len(rows) and rows[-1] - rows[0] + 1 == len(rows):
            return self.take(slice(rows[0], rows[-1] + 1))  # no copy of the features
        return self.take(rows)

    def inputs(self) -> np.ndarray:
        """Features shaped as the model sees them (images back to their 2-D shape)."""
        return self.X.reshape((len(self), *self.spec.feature_shape))


@dataclasses.dataclass
class SplitIndex:
    """Which split each raw row belongs to: row ids, split labels and the target (for class
    balance), no features; scaling joins it onto the raw rows."""

    spec: DatasetSpec
    y: np.ndarray
    row_id: np.ndarray
    split: np.ndarray | pa.Array

    def __len__(self) -> int:
        return len(self.y)


def to_arrow(frame: Frame | SplitIndex) -> pa.Table:
    """The Parquet layout of a frame, or of a split index (no feature columns)."""
    spec = frame.spec
    columns: dict[str, pa.Array] = {"row_id": pa.array(frame.row_id, pa.int64())}
    if frame.split is not None:
        columns["split"] = frame.split if isinstance(frame.split, pa.Array) else pa.array(frame.split, pa.string())
    columns[spec.target] = pa.array(frame.y)
    if isinstance(frame, SplitIndex):
        return pa.table(columns, schema=pa.schema([pa.field(n, a.type) for n, a in columns.items()],
                                                  metadata={SPEC_KEY: spec.to_json().encode()}))
    if spec.is_image:
        columns[IMAGE_COLUMN] = tensor_array(frame.X)
    else:
        by_column = np.ascontiguousarray(frame.X.T)
        for name, values in zip(spec.features, by_column):
            columns[name] = pa.array(values)
        for i, name in enumerate(spec.categorical):
            columns[name] = pa.array(frame.text[:, i], pa.string())
    fields = [pa.field(name, array.type, metadata={DTYPE_KEY: frame.X.dtype.str.encode()}
                       if name == IMAGE_COLUMN else None) for name, array in columns.items()]
    return pa.table(columns, schema=pa.schema(fields, metadata={SPEC_KEY: spec.to_json().encode()}))


def tensor_array(X: np.ndarray) -> pa.FixedSizeBinaryArray:
    """Rows of ``X`` as fixed-size binary values, sharing ``X``'s memory (no copy when contiguous)."""
    rows = np.ascontiguousarray(X)
    width = rows.itemsize * int(np.prod(rows.shape[1:]))
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(rows), [None, pa.py_buffer(rows)])


def tensor_dtype(field: pa.Field) -> np.dtype | None:
    """The numpy dtype of a tensor column, None for any other column."""
    meta = field.metadata or {}
    return np.dtype(meta[DTYPE_KEY].decode()) if DTYPE_KEY in meta else None


def tensor_column(table: pa.Table, name: str) -> np.ndarray:
    """A tensor column back as a (rows x features) array; zero-copy when the column is one chunk."""
    field = table.schema.field(name)
    dtype = tensor_dtype(field)
    if pa.types.is_fixed_size_list(field.type):
        raise ValueError(f"column {name!r} is {field.type}: an artifact of an older version of the "
                         "pipeline; re-run the flow (or pass --force) to rewrite it")
    if not pa.types.is_fixed_size_binary(field.type) or dtype is None \
            or field.type.byte_width % dtype.itemsize:
        raise ValueError(f"column {name!r} is {field.type}, not a tensor column written by the pipeline")
    chunks = table[name].chunks
    column = chunks[0] if len(chunks) == 1 else pa.concat_arrays(chunks)
    if column.null_count:
        raise ValueError(f"column {name!r} has {column.null_count} empty (null) rows")
    width = field.type.byte_width
    if len(column) == 0:
        return np.empty((0, width // dtype.itemsize), dtype)
    data = np.frombuffer(column.buffers()[1], np.uint8, len(column) * width, column.offset * width)
    return data.view(dtype).reshape(len(column), -1)


def spec_of(table: pa.Table | pa.Schema) -> DatasetSpec:
    meta = getattr(table, "schema", table).metadata or {}
    if SPEC_KEY not in meta:
        raise ValueError("this Parquet file carries no dataset spec: it was not written by the pipeline")
    return DatasetSpec.from_json(meta[SPEC_KEY])


def from_arrow(table: pa.Table) -> Frame:
    spec = spec_of(table)
    if not {*spec.features[:1], *spec.categorical[:1], IMAGE_COLUMN} & set(table.column_names):
        raise ValueError(f"{spec.name}: this table has no feature columns (a split index? read it with read_index)")
    if spec.is_image:
        X = tensor_column(table, IMAGE_COLUMN)
        if X.shape[1] != int(np.prod(spec.image_shape)):
            raise ValueError(f"{spec.name}: images of {X.shape[1]} values, but the spec says {spec.image_shape}")
    else:
        X = np.column_stack([table[name].to_numpy() for name in spec.features]) if spec.features \
            else np.empty((table.num_rows, 0))
    split = split_labels(table["split"]) if "split" in table.column_names else None
    text = np.column_stack([table[name].to_numpy(zero_copy_only=False) for name in spec.categorical]) \
        if spec.categorical else None
    return Frame(spec, X, table[spec.target].to_numpy(), table["row_id"].to_numpy(), split, text)


def split_labels(column: pa.ChunkedArray) -> np.ndarray:
    """A split column as an object array of three shared strings: 8 bytes a row, where decoding
    each value makes a string object of its own (tens of bytes a row)."""
    if column.null_count:
        return column.to_numpy(zero_copy_only=False)
    encoded = column.combine_chunks().dictionary_encode()
    return np.array(encoded.dictionary.to_pylist(), dtype=object)[encoded.indices.to_numpy()]


def is_streamed(ref_or_path) -> bool:
    """Whether an artifact's stages run a row group at a time (its spec says, from the load on)."""
    return spec_of(read_schema(getattr(ref_or_path, "path", ref_or_path))).streamed


def read_index(path: str) -> SplitIndex:
    """A split index artifact (``tasks/stages/split.py``) back in memory."""
    table = read_parquet(path)
    spec = spec_of(table)
    return SplitIndex(spec, table[spec.target].to_numpy(), table["row_id"].to_numpy(), split_labels(table["split"]))


def read_frame(path: str, columns: list[str] | None = None, filters=None) -> Frame:
    """Read a pipeline Parquet artifact (all columns, or only those named) back into a Frame."""
    return from_arrow(read_parquet(path, columns=columns, filters=filters))


# The last few tables written or read in this process, by path. Artifacts never change once
# written, so the next stage in the same process can take the table from memory instead of
# decoding the Parquet file again (the flow writes scaled data and reads it back three times).
_RECENT: OrderedDict[str, pa.Table] = OrderedDict()
_RECENT_SIZE = 4


def remember(path: str, table: pa.Table) -> None:
    _RECENT[str(path)] = table
    _RECENT.move_to_end(str(path))
    while len(_RECENT) > _RECENT_SIZE:
        _RECENT.popitem(last=False)


def read_parquet(path: str | os.PathLike, columns: list[str] | None = None, filters=None) -> pa.Table:
    """A stored Parquet artifact as an Arrow table (from memory when this process just had it)."""
    table = _RECENT.get(str(path))
    if table is None and filters is not None:  # a slice, filtered a row group at a time (by range from a bucket)
        return pq.read_table(readable(path), columns=columns, filters=filters)
    if table is None:
        table = pq.read_table(readable(path, whole=True))
        remember(str(path), table)
    if filters is not None:
        table = table.filter(pq.filters_to_expression(filters))
    return table.select(columns) if columns is not None else table
