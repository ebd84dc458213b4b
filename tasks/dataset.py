"""One in-memory shape for every dataset, and its one Parquet layout.

A ``Frame`` is features ``X`` (rows x features, flat), target ``y``, a ``row_id`` per
row (its position in the raw artifact, so splits can be checked for overlap) and an
optional ``split`` label. Its ``DatasetSpec`` travels inside the Parquet schema
metadata, so every artifact says what it holds (task, target, feature names, image
shape, known ranges) without a side channel.

Parquet layout: ``row_id``, ``split`` (optional), the target column, then either one
column per named feature (tables) or a single fixed-size-list column ``image``
(images, stored flat; the shape is in the spec). A single tensor column keeps 784
pixels out of 784 separate Parquet columns and pandas paths.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pyarrow as pa

SPEC_KEY = b"pipeline.dataset"
IMAGE_COLUMN = "image"
SPLITS = ("train", "valid", "test")


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
    split: dict[str, Any] = dataclasses.field(default_factory=dict)  # how split.py splits it

    @property
    def is_image(self) -> bool:
        return self.image_shape is not None

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return self.image_shape or (len(self.features),)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> "DatasetSpec":
        raw = json.loads(text)
        for key in ("features", "image_shape", "classes", "target_range"):
            if raw.get(key) is not None:
                raw[key] = tuple(raw[key])
        if raw.get("feature_ranges"):
            raw["feature_ranges"] = {k: tuple(v) for k, v in raw["feature_ranges"].items()}
        return cls(**raw)

    def replace(self, **changes: Any) -> "DatasetSpec":
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass
class Frame:
    """Rows of one dataset in memory: flat features, target, row ids, split labels."""

    spec: DatasetSpec
    X: np.ndarray
    y: np.ndarray
    row_id: np.ndarray
    split: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y)

    def take(self, mask_or_index: np.ndarray) -> "Frame":
        split = None if self.split is None else self.split[mask_or_index]
        return Frame(self.spec, self.X[mask_or_index], self.y[mask_or_index],
                     self.row_id[mask_or_index], split)

    def part(self, name: str) -> "Frame":
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


def to_arrow(frame: Frame) -> pa.Table:
    """The Parquet layout of a frame; a frame with no feature columns (a split index) writes none."""
    spec = frame.spec
    columns: dict[str, pa.Array] = {"row_id": pa.array(frame.row_id, pa.int64())}
    if frame.split is not None:
        columns["split"] = pa.array(frame.split, pa.string())
    columns[spec.target] = pa.array(frame.y)
    if frame.X.shape[1] == 0:
        pass
    elif spec.is_image:
        flat = np.ascontiguousarray(frame.X).reshape(-1)
        columns[IMAGE_COLUMN] = pa.FixedSizeListArray.from_arrays(pa.array(flat), frame.X.shape[1])
    else:
        by_column = np.ascontiguousarray(frame.X.T)
        for name, values in zip(spec.features, by_column):
            columns[name] = pa.array(values)
    table = pa.table(columns)
    return table.replace_schema_metadata({SPEC_KEY: spec.to_json().encode()})


def spec_of(table: pa.Table | pa.Schema) -> DatasetSpec:
    meta = getattr(table, "schema", table).metadata or {}
    if SPEC_KEY not in meta:
        raise ValueError("this Parquet file carries no dataset spec: it was not written by the pipeline")
    return DatasetSpec.from_json(meta[SPEC_KEY])


def from_arrow(table: pa.Table) -> Frame:
    spec = spec_of(table)
    if spec.features[0] not in table.column_names and IMAGE_COLUMN not in table.column_names:
        X = np.empty((table.num_rows, 0))  # a split index: no features
    elif spec.is_image:
        chunks = table[IMAGE_COLUMN].chunks
        column = chunks[0] if len(chunks) == 1 else pa.concat_arrays(chunks)  # one chunk: no copy
        X = column.flatten().to_numpy().reshape(table.num_rows, -1)
    else:
        X = np.column_stack([table[name].to_numpy() for name in spec.features])
    split = table["split"].to_numpy(zero_copy_only=False) if "split" in table.column_names else None
    return Frame(spec, X, table[spec.target].to_numpy(), table["row_id"].to_numpy(), split)


def read_frame(path: str, columns: list[str] | None = None, filters=None) -> Frame:
    """Read a pipeline Parquet artifact (all columns, or only those named) back into a Frame."""
    from tasks.store import read_parquet

    return from_arrow(read_parquet(path, columns=columns, filters=filters))
