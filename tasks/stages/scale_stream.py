"""The scale stage a row group at a time, for tables larger than memory.

Two passes over the raw artifact's row groups, each beside the split index's rows (both are in
the raw order): the first merges the train rows' moments (``Moments``: the scaler is the one
fitted on all train rows at once, to rounding) and, for ``--drop-constant``, their ranges; the
second scales each group and writes its train, valid and test rows as row groups of their own,
so that a reader of one split (``tasks/model/streamed_batches.py``) reads only that split's
groups (of at most ``GROUP_BYTES`` of values: fewer rows for a wide one-hot table, so that
neither this pass nor training's window of groups holds a gigabyte a group). The values are
those ``scale`` gives; only the rows' order differs (the in-memory stage puts each split in one
block). With ``--missing impute``, the train rows' medians come first
(``streamed_median``: exact, in a few passes more), and the moments, the ranges and the scaled
values are of the rows so filled, as in memory. A table's categorical columns: the first pass
also counts the train rows of each category, and their vocabulary is the one learnt in memory
from the same rows (``Vocabulary.from_counts``); the second pass writes each row's one-hot
columns after its scaled numbers, and counts the valid and test rows of unseen categories.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tasks.stages.categories import Vocabulary
from tasks.stages.fan_out import Span, rows_in, scanned, table_rows
from tasks.stages.scale import StandardScaler, refuse_empty_train_columns
from tasks.stages.streamed_median import medians
from tasks.stages.streamed_stats import Moments, rows_of, rows_per_batch
from tasks.store.dataset import SPLITS, DatasetSpec, Frame, spec_of, to_arrow
from tasks.store.sources import read_schema

GROUP_BYTES = 64 * 2**20  # most bytes of scaled values per row group written: a wide one-hot table gets fewer rows


def aligned(left: Iterator[pa.RecordBatch], right: Iterator[pa.RecordBatch]
            ) -> Iterator[tuple[pa.RecordBatch, pa.RecordBatch]]:
    """Two streams of the same rows cut at different places, as pairs of batches of equal length."""
    a, b = next(left, None), next(right, None)
    while a is not None and b is not None:
        n = min(a.num_rows, b.num_rows)
        yield a.slice(0, n), b.slice(0, n)
        a = a.slice(n) if a.num_rows > n else next(left, None)
        b = b.slice(n) if b.num_rows > n else next(right, None)
    if (a is None) != (b is None):
        raise ValueError("the raw artifact and its split index hold different numbers of rows")


class StreamedScale:
    """The scale stage over a raw artifact and its split index, neither read whole."""

    def __init__(self, raw_path: str, index_path: str, scale_target: bool = False, batch_rows: int | None = None,
                 parts: int = 1):
        self.raw_path, self.index_path, self.batch_rows, self.parts = raw_path, index_path, batch_rows, parts
        spec = spec_of(read_schema(raw_path))
        self.raw_spec, self.names, self.fill = spec, list(spec.features), None
        self.vocabulary, self.unseen = None, dict.fromkeys(spec.categorical, 0)
        if spec.missing == "impute":  # the train rows' medians, before their moments (of the filled rows)
            self.fill = medians(self._train_rows, len(self.names))
            refuse_empty_train_columns(self.fill, self.names)
        x, y, n = self._train_moments()
        self.train_moments = x  # every raw feature's, as are ``low`` and ``high`` (predict's drift profile)
        if not spec.drop_constant:
            self.kept[:] = True
        self.scaler = StandardScaler.from_moments(x.mean[self.kept], x.std[self.kept], n)
        if self.fill is not None:
            self.scaler.fill_ = self.fill[self.kept]
        names = [name for name, keep in zip(self.names, self.kept) if keep]
        out = spec
        if scale_target:
            target = StandardScaler.from_moments(y.mean, y.std, n)
            out = out.replace(target_scaling=(float(target.mean_[0]), float(target.scale_[0])))
        if spec.drop_constant or spec.categorical:
            encoded = tuple(self.vocabulary.names()) if self.vocabulary else ()
            out = out.replace(features=(*names, *encoded), categorical=(), encoded=encoded)
        self.spec: DatasetSpec = out

    def scaler_table(self) -> pa.Table:
        """The scaler's artifact, with what the train rows were per kept feature beside it
        (``train_std``, ``train_low``, ``train_high``): predict's drift profile reads them there
        instead of scanning the raw table again (tasks/serving/drift.py)."""
        kept = self.kept
        numeric = list(self.spec.features)[:int(kept.sum())]  # (the one-hot columns follow them)
        return self.scaler.to_arrow(numeric).append_column(
            "train_std", pa.array(self.train_moments.std[kept])).append_column(
            "train_low", pa.array(self.low[kept])).append_column("train_high", pa.array(self.high[kept]))

    def _pairs(self) -> Iterator[tuple[pa.RecordBatch, pa.Array]]:
        yield from paired((0, table_rows(self.raw_path)), self.raw_path, self.index_path, self.raw_spec.target,
                          [*self.names, *self.raw_spec.categorical], self.batch_rows)

    def _train_rows(self) -> Iterator[np.ndarray]:
        """The train rows' features (as read: missing values NaN), a batch at a time."""
        for rows, labels in self._pairs():
            yield _features(rows, self.names)[rows_of(labels, "train")]

    def _train_moments(self) -> tuple[Moments, Moments, int]:
        """The train rows' moments, target's and ranges, and their categories' counts (the
        vocabulary), scanned in ``parts`` (fan_out.py)."""
        width, categorical = len(self.names), list(self.raw_spec.categorical)
        x, y = Moments(0, np.zeros(width), np.zeros(width)), Moments(0, np.zeros(1), np.zeros(1))
        low, high = np.full(width, np.inf), np.full(width, -np.inf)
        words = [Counter() for _ in categorical]
        for part in scanned(train_part, table_rows(self.raw_path), self.parts, self.raw_path, self.index_path,
                            self.raw_spec.target, self.names, self.batch_rows, self.fill, categorical,
                            batch_rows=self.batch_rows):
            x, y = x.merged(part[0]), y.merged(part[1])
            low, high = np.minimum(low, part[2]), np.maximum(high, part[3])
            for counted, more in zip(words, part[4]):
                counted.update(more)
        if x.count == 0:
            raise ValueError("StandardScaler.fit() got no rows: the train split is empty")
        if categorical:
            self.vocabulary = Vocabulary.from_counts(tuple(categorical), [dict(w) for w in words],
                                                     self.raw_spec.missing == "impute")
        self.kept, self.low, self.high = ~(low == high), low, high
        return x, y, x.count

    def scaled_batches(self) -> Iterator[pa.RecordBatch]:
        """The scaled artifact's rows in one pass: each raw group's train, valid and test rows as
        groups of their own (so a reader of one split reads only its groups). Scaled a column at a
        time into a column-major block (``to_arrow`` then takes its columns without a copy) with
        ``StandardScaler.transform``'s float32 arithmetic, so the values are the same."""
        mean, scale = self.scaler.mean_.astype(np.float32), self.scaler.scale_.astype(np.float32)
        kept, width = np.flatnonzero(self.kept), len(self.spec.features)
        step = max(1, min(rows_per_batch(self.batch_rows), GROUP_BYTES // (4 * max(width, 1))))
        for rows, labels in (pair for whole in self._pairs() for pair in _sliced(*whole, step)):
            X = np.empty((rows.num_rows, width), np.float32, order="F")
            for k, j in enumerate(kept):
                values = rows.column(int(j) + 2).to_numpy(zero_copy_only=False)
                if self.fill is not None:  # as ``StandardScaler.filled``, before the arithmetic
                    values = np.where(np.isnan(values), self.fill[j], values)
                np.subtract(values, mean[k], out=X[:, k], dtype=np.float32)
                np.divide(X[:, k], scale[k], out=X[:, k])
            if self.vocabulary is not None:  # the one-hot columns after the numbers, as in memory
                self._one_hot(rows, X[:, len(kept):])
            whole = to_arrow(Frame(self.spec, X, _target(rows), rows.column(0).to_numpy(), labels))
            for name in SPLITS:
                part = whole.filter(pc.equal(labels, name))
                if part.num_rows:
                    yield from part.to_batches()

    def _one_hot(self, rows: pa.RecordBatch, out: np.ndarray) -> None:
        """The categorical columns' one-hot block written into ``out``, the unseen categories counted."""
        first = 2 + len(self.names)
        _, unseen = self.vocabulary.encode(rows.columns[first:first + len(self.raw_spec.categorical)], out)
        for column, count in zip(self.raw_spec.categorical, unseen):
            self.unseen[column] += count


def _sliced(rows: pa.RecordBatch, labels: pa.Array, step: int) -> Iterator[tuple[pa.RecordBatch, pa.Array]]:
    """A batch and its labels in slices of ``step`` rows."""
    for start in range(0, rows.num_rows, step):
        yield rows.slice(start, step), labels.slice(start, step)


def paired(span: Span, raw_path: str, index_path: str, target: str, names: list[str], batch_rows: int | None
           ) -> Iterator[tuple[pa.RecordBatch, pa.Array]]:
    """The raw rows of ``span`` (row id, target, ``names``) beside their split labels."""
    raw = rows_in(raw_path, ["row_id", target, *names], span, batch_rows)
    index = rows_in(index_path, ["row_id", "split"], span, batch_rows)
    for rows, labels in aligned(raw, index):
        if not rows.column(0).equals(labels.column(0)):  # paired by position: the same rows, or a fault
            raise ValueError(f"the split index of {raw_path} does not list the raw rows in their order")
        yield rows, labels.column(1)


def train_part(span: Span, raw_path: str, index_path: str, target: str, names: list[str], batch_rows: int | None,
               fill: np.ndarray | None = None, categorical: list[str] = ()
               ) -> tuple[Moments, Moments, np.ndarray, np.ndarray, list[dict]]:
    """The train rows' feature and target moments, the features' ranges and each ``categorical``
    column's rows per category, over ``span`` (missing values filled with ``fill`` first, when given)."""
    width = len(names)
    x, y = Moments(0, np.zeros(width), np.zeros(width)), Moments(0, np.zeros(1), np.zeros(1))
    low, high = np.full(width, np.inf), np.full(width, -np.inf)
    words = [Counter() for _ in categorical]
    for rows, labels in paired(span, raw_path, index_path, target, [*names, *categorical], batch_rows):
        train = rows_of(labels, "train")
        mask = pa.array(train) if words else None
        for k, counted in enumerate(words):
            found = pc.value_counts(rows.column(2 + width + k).filter(mask).drop_null())
            counted.update(dict(zip(found.field("values").to_pylist(), found.field("counts").to_pylist())))
        X = _features(rows, names)[train]
        if fill is not None:
            X = np.where(np.isnan(X), fill, X)
        x, y = x.merged(Moments.of(X)), y.merged(Moments.of(_target(rows)[train, None]))
        if len(X):
            low, high = np.minimum(low, X.min(axis=0)), np.maximum(high, X.max(axis=0))
    return x, y, low, high, [dict(w) for w in words]


def _features(rows: pa.RecordBatch, names: list[str]) -> np.ndarray:
    """The numeric features of a batch (rows x 0 for a table of categorical columns only)."""
    if not names:
        return np.empty((rows.num_rows, 0))
    return np.column_stack([rows.column(i + 2).to_numpy(zero_copy_only=False) for i in range(len(names))])


def _target(rows: pa.RecordBatch) -> np.ndarray:
    return rows.column(1).to_numpy(zero_copy_only=False)
