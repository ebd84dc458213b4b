"""The streamed median is numpy's nanmedian of the same values, exactly: odd and even counts,
repeats, values a few floats apart, missing values, columns of one value or none, in batches."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from tasks.stages import streamed_median
from tasks.stages.streamed_median import medians


def same_as_numpy(X: np.ndarray, batches: int) -> None:
    parts = np.array_split(X, batches)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column: NaN, as ours
        expected = np.nanmedian(X, axis=0)
    assert np.array_equal(medians(lambda: iter(parts), X.shape[1]), expected, equal_nan=True)


@pytest.mark.parametrize("seed", range(12))
def test_the_median_is_numpys_of_the_same_values_however_few_it_may_hold(seed, monkeypatch):
    rng = np.random.default_rng(seed)
    monkeypatch.setattr(streamed_median, "HELD", int(rng.integers(1, 2_000)))  # several passes
    monkeypatch.setattr(streamed_median, "BINS", int(rng.choice([2, 3, 16, 4_096])))
    n = int(rng.integers(1, 30_000))
    X = np.column_stack([rng.normal(size=n) * 10.0 ** rng.integers(-5, 5), rng.integers(-3, 3, n).astype(float),
                         np.where(rng.random(n) < 0.5, np.nan, rng.standard_cauchy(n)), np.full(n, 3.5)])
    same_as_numpy(X, int(rng.integers(1, 20)))


def test_repeats_values_a_float_apart_and_empty_columns(monkeypatch):
    monkeypatch.setattr(streamed_median, "HELD", 100)
    near = np.concatenate([np.full(2_550, 1.0), np.full(2_550, np.nextafter(1.0, 2.0))])
    repeats = np.concatenate([np.full(5_000, 35.0), np.random.default_rng(0).normal(size=100)])
    same_as_numpy(np.column_stack([near, repeats[:5_100], np.full(5_100, np.nan)]), 7)
    same_as_numpy(np.array([[2.0], [1.0]]), 1)
