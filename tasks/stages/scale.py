"""Scaling: a standard scaler fit on the training split only.

The course's regression code refits the scaler on the validation and test sets; that
leaks their statistics into the inputs, so here ``fit`` sees the train rows and
nothing else, and ``transform`` applies those train statistics to every split.
It follows scikit-learn's contract: ``__init__`` stores nothing learned, what is
learned ends in ``_``, and ``transform`` refuses to run before ``fit``.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from tasks.core.errors import DataError
from tasks.stages.categories import Vocabulary
from tasks.store.dataset import Frame, SplitIndex

_CHUNK_ROWS = 8_192
assert _CHUNK_ROWS * 255 ** 2 < 2 ** 31, "_byte_moments sums a chunk's squares in int32"


def _blocks(X: np.ndarray, dtype) -> Iterator[tuple[int, np.ndarray]]:
    """``X`` a chunk of rows at a time, as ``dtype``, converted into one buffer reused for
    every chunk (a fresh array per chunk pays its page faults each time, which on a VM can cost
    more than the arithmetic). A chunk is valid until the next is asked for."""
    buffer = np.empty((min(_CHUNK_ROWS, len(X)), *X.shape[1:]), dtype)
    for start in range(0, len(X), _CHUNK_ROWS):
        rows = X[start:start + _CHUNK_ROWS]
        block = buffer[:len(rows)]
        np.copyto(block, rows, casting="unsafe")
        yield start, block


def column_moments(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and std in float64: two chunked passes, never a full float64 copy."""
    n = len(X)
    if X.dtype.itemsize == 1 and X.dtype.kind in "ui":  # pixels: exact integer sums, one pass
        return _byte_moments(X)
    mean = sum(block.sum(axis=0) for _, block in _blocks(X, np.float64)) / n
    squares = 0.0
    for _, block in _blocks(X, np.float64):
        np.subtract(block, mean, out=block)
        squares = squares + np.square(block, out=block).sum(axis=0)
    return mean, np.sqrt(squares / n)


def _byte_moments(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of 8-bit columns from exact integer sums of x and x^2 (a chunk of 8,192
    squares of at most 255^2 sums below 2^31), so one pass and no float rounding until the end."""
    n, total, squares = len(X), np.zeros(X.shape[1], np.int64), np.zeros(X.shape[1], np.int64)
    for _, block in _blocks(X, np.int32):
        total += block.sum(axis=0)
        squares += np.einsum("ij,ij->j", block, block)
    mean = total / n
    return mean, np.sqrt(np.maximum(squares - total * mean, 0.0) / n)


def checked_moments(X: np.ndarray, n_train: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the scaled-data check needs in one chunked float64 pass over ``X``: mean and std of
    its first ``n_train`` rows, and each column's count of NaN or inf over all rows (a column
    sum is finite unless the column holds one, so only such columns are counted again)."""
    width = X.shape[1]
    everything, total, squares = np.zeros(width), np.zeros(width), np.zeros(width)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN, which is what it must tell
        for start, block in _blocks(X, np.float64):
            sums = block.sum(axis=0)
            everything += sums
            train = block[:max(0, n_train - start)]
            total += sums if len(train) == len(block) else train.sum(axis=0)
            squares += np.einsum("ij,ij->j", train, train)
    mean = total / max(n_train, 1)
    std = np.sqrt(np.maximum(squares / max(n_train, 1) - mean ** 2, 0.0))  # scaled data: mean ~0, no cancellation
    nonfinite = np.zeros(width, np.int64)
    suspect = ~np.isfinite(everything)
    if suspect.any():
        nonfinite[suspect] = (~np.isfinite(X[:, suspect])).sum(axis=0)
    return mean, std, nonfinite


def kept_scale(mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """The scale a column is divided by: its std, or 1 where it is constant (scikit-learn's rule)."""
    return np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)


class NotFittedError(RuntimeError):
    """transform() was called before fit()."""


class StandardScaler:
    """(x - mean_) / scale_ per feature; a constant feature gets scale_ 1, as in scikit-learn.
    ``impute``: a missing value is first replaced by its column's median on the fitted rows
    (``fill_``, as scikit-learn's ``SimpleImputer(strategy="median")``), in ``transform`` too."""

    def fit(self, X: np.ndarray, impute: bool = False) -> StandardScaler:
        if len(X) == 0:
            raise ValueError("StandardScaler.fit() got no rows: the train split is empty")
        if impute:
            X = np.asarray(X[:len(X)], np.float64)
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column: said below
                self.fill_ = np.nanmedian(X, axis=0)
            X = self.filled(X)
        self.mean_, std = column_moments(X)
        self.scale_, self.n_samples_seen_ = kept_scale(self.mean_, std), len(X)
        return self

    @classmethod
    def from_moments(cls, mean: np.ndarray, std: np.ndarray, count: int) -> StandardScaler:
        """A scaler from moments measured elsewhere (merged over row groups): ``fit``'s rule."""
        scaler = cls()
        scaler.mean_, scaler.scale_, scaler.n_samples_seen_ = mean, kept_scale(mean, std), count
        return scaler

    def transform(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "mean_"):
            raise NotFittedError("StandardScaler.transform() called before fit(): fit on the train split first")
        mean, scale = self.mean_.astype(np.float32), self.scale_.astype(np.float32)
        out = np.empty(X.shape, dtype=np.float32)
        for start in range(0, len(X), _CHUNK_ROWS):  # in place: the same float32 values, no temporaries
            rows = slice(start, start + _CHUNK_ROWS)
            np.subtract(self.filled(X[rows]), mean, out=out[rows], dtype=np.float32)
            np.divide(out[rows], scale, out=out[rows])
        return out

    def filled(self, X: np.ndarray) -> np.ndarray:
        """``X`` with its missing values imputed (``X`` itself when this scaler does not impute)."""
        fill = getattr(self, "fill_", None)
        return X if fill is None else np.where(np.isnan(X), fill, X)

    def to_arrow(self, features: list[str]) -> pa.Table:
        fill = {"fill": self.fill_} if getattr(self, "fill_", None) is not None else {}
        return pa.table({"feature": features, "mean": self.mean_, "scale": self.scale_, **fill})

    @classmethod
    def from_arrow(cls, table: pa.Table) -> StandardScaler:
        scaler = cls()
        scaler.mean_ = table["mean"].to_numpy()
        scaler.scale_ = table["scale"].to_numpy()
        if "fill" in table.column_names:
            scaler.fill_ = table["fill"].to_numpy()
        return scaler


def feature_names(frame: Frame) -> list[str]:
    """One name per flat feature column ("image[0]".. for images)."""
    if frame.spec.is_image:
        return [f"{frame.spec.features[0]}[{i}]" for i in range(frame.X.shape[1])]
    return list(frame.spec.features)


class _Rows:
    """``X[position]`` without the copy (74 MB for a million housing rows): the scaler reads
    in chunks, and each chunk is gathered as it is read."""

    def __init__(self, X: np.ndarray, position: np.ndarray):
        self.X, self.position, self.dtype = X, position, X.dtype
        self.shape = (len(position), *X.shape[1:])

    def __len__(self) -> int:
        return len(self.position)

    def __getitem__(self, rows: slice) -> np.ndarray:
        return self.X[self.position[rows]]


class Scaled(NamedTuple):
    frame: Frame
    scaler: StandardScaler
    vocabulary: Vocabulary | None = None  # the categorical columns' (one-hot, after the numbers)
    unseen: dict[str, int] | None = None  # per categorical column: valid and test rows of unseen categories


def scale(raw: Frame, index: SplitIndex, scale_target: bool = False) -> Scaled:
    """Join the split index onto the raw rows, fit on train rows only, scale every split.

    Rows come out ordered train, valid, test so that each split is one contiguous block.
    ``scale_target``: also measure the target's mean and standard deviation on the train rows
    (as scikit-learn's ``TransformedTargetRegressor`` with a ``StandardScaler`` does), recorded in
    the scaled data's spec; the target values themselves stay in their own units.
    What a user's table declared is learnt here on the train rows too: the medians that fill
    missing numbers (``missing="impute"``), which constant features are dropped, and the
    categorical columns' vocabulary, whose one-hot columns follow the scaled numbers.
    """
    order = np.concatenate([np.flatnonzero(index.split == name) for name in ("train", "valid", "test")])
    row_id, labels = index.row_id[order], index.split[order]
    position = np.searchsorted(raw.row_id, row_id)
    n_train = int(np.count_nonzero(labels == "train"))
    spec, impute = raw.spec, raw.spec.missing == "impute"
    X, names = raw.X, feature_names(raw)
    if spec.drop_constant:  # constant on the train rows (what the model would learn from)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            train = X[position[:n_train]]
            kept = ~(np.nanmin(train, axis=0) == np.nanmax(train, axis=0))
        X, names = X[:, kept], [name for name, keep in zip(names, kept) if keep]
    scaler = StandardScaler().fit(_Rows(X, position[:n_train]), impute)  # train rows only: they come first
    refuse_empty_train_columns(getattr(scaler, "fill_", None), names)
    y = raw.y[position]
    if scale_target:
        spec = spec.replace(target_scaling=target_moments(y[:n_train]))
    numbers, vocabulary, unseen = scaler.transform(_Rows(X, position)), None, None
    if spec.categorical:
        vocabulary = Vocabulary.fit(raw.text[position[:n_train]], spec.categorical, impute)
        one_hot, counts = vocabulary.encode(raw.text[position])
        numbers, unseen = np.concatenate([numbers, one_hot], axis=1), dict(zip(spec.categorical, counts))
    if spec.drop_constant or spec.categorical:
        encoded = tuple(vocabulary.names()) if vocabulary else ()
        spec = spec.replace(features=(*names, *encoded), categorical=(), encoded=encoded)
    return Scaled(Frame(spec, numbers, y, row_id, labels), scaler, vocabulary, unseen)


def refuse_empty_train_columns(fill: np.ndarray | None, names: list[str]) -> None:
    """A column with no value in any train row has no median to impute from: refused, named."""
    if fill is not None and np.isnan(fill).any():
        empty = [name for name, value in zip(names, fill) if np.isnan(value)]
        raise DataError(f"{', '.join(map(repr, empty))}: no value in any train row, so there is no median to "
                        "impute from (--missing impute); drop the column or fill it")


def target_moments(y: np.ndarray) -> tuple[float, float]:
    """(mean, scale) of a regression target's train values, by the features' own scaler (so a
    constant target gets scale 1 by the same rule)."""
    fitted = StandardScaler().fit(np.asarray(y, np.float64).reshape(-1, 1))
    return float(fitted.mean_[0]), float(fitted.scale_[0])
