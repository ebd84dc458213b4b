"""What the data stages compute a row group at a time, for tables larger than memory.

- ``hash_labels``: a row's split from a hash of its row number and the seed, so any row group is
  split on its own, in any order, on any worker, and the same seed gives the same split. The
  proportions are the course's (test a quarter of the rows, valid a quarter of the rest); unlike
  the in-memory split it is not stratified by label, which a table of millions of rows does not need.
- ``Moments``: count, mean and sum of squared deviations per column, merged exactly across row
  groups (Chan, Golub and LeVeque's pairwise update), so the scaler fitted from the groups'
  moments is the one fitted on all the train rows at once, to rounding.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tasks.store.sources import parquet_file

BATCH_ROWS = 262_144  # rows a streamed stage holds at a time, and per row group of what it writes
TEST_SHARE, VALID_SHARE = 0.25, 0.25  # of all rows; of the rows left after test (the course's; split.py's too)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def rows_per_batch(given: int | None = None) -> int:
    """``given``, or ``BATCH_ROWS`` as the module holds it when called (a test lowers it to give a
    small table many row groups)."""
    return given or BATCH_ROWS


def batches(path: str, columns: list[str], batch_rows: int | None = None) -> Iterator[pa.RecordBatch]:
    """An artifact's columns, ``batch_rows`` rows at a time, read page by page (``parquet_file``)."""
    parquet = parquet_file(path, whole=True)
    yield from parquet.iter_batches(batch_size=rows_per_batch(batch_rows), columns=columns)


def rows_of(labels: pa.Array, split: str) -> np.ndarray:
    """Which of a group's rows a split's labels name (compared in Arrow: no Python string per row)."""
    return pc.equal(labels, split).to_numpy(zero_copy_only=False)


def _mixed(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: 64 well-mixed bits from each 64-bit input."""
    with np.errstate(over="ignore"):
        z = x * np.uint64(1) + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def hash_unit(row_id: np.ndarray, seed: int) -> np.ndarray:
    """A number in [0, 1) for each row number, uniform over rows, fixed by the seed."""
    with np.errstate(over="ignore"):
        keys = np.asarray(row_id).astype(np.uint64) + np.uint64(seed) * _GOLDEN
    return (_mixed(keys) >> np.uint64(11)).astype(np.float64) / 2.0 ** 53


def hash_labels(row_id: np.ndarray, seed: int) -> pa.StringArray:
    """"train", "valid" or "test" for each row number, by a seeded hash (see the module's text), as
    Arrow text (taken from three names by a code per row: no Python string per row)."""
    u = hash_unit(row_id, seed)
    codes = (u >= TEST_SHARE).astype(np.int8) + (u >= TEST_SHARE + (1 - TEST_SHARE) * VALID_SHARE)
    return pa.array(["test", "valid", "train"]).take(pa.array(codes))


@dataclass(frozen=True)
class Moments:
    """Per column: rows counted, their mean and their sum of squared deviations from it."""

    count: int
    mean: np.ndarray
    squares: np.ndarray

    @classmethod
    def of(cls, X: np.ndarray) -> Moments:
        X = np.asarray(X, np.float64)
        mean = X.mean(axis=0) if len(X) else np.zeros(X.shape[1])
        return cls(len(X), mean, np.square(X - mean).sum(axis=0))

    def merged(self, other: Moments) -> Moments:
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        count = self.count + other.count
        delta = other.mean - self.mean
        return Moments(count, self.mean + delta * (other.count / count),
                       self.squares + other.squares + delta ** 2 * (self.count * other.count / count))

    @property
    def std(self) -> np.ndarray:
        """The population standard deviation, as scikit-learn's ``StandardScaler`` takes it."""
        return np.sqrt(self.squares / max(self.count, 1))
