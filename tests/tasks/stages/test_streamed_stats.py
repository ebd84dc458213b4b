"""The per-row-group statistics of the streamed data stages: a split decided row by row from a
seeded hash, and moments merged across groups that equal the whole table's."""
from __future__ import annotations

import numpy as np

from tasks.stages.scale import StandardScaler
from tasks.stages.streamed_stats import Moments, hash_split


def test_the_hash_split_is_the_same_for_a_row_wherever_it_is_split_and_follows_the_seed():
    rows = np.arange(200_000)
    whole = hash_split(rows, seed=7)
    in_groups = np.concatenate([hash_split(rows[i:i + 30_000], seed=7) for i in range(0, len(rows), 30_000)])
    assert np.array_equal(whole, in_groups)
    assert np.array_equal(whole[::-1], hash_split(rows[::-1], seed=7))  # order does not matter
    shares = {name: np.mean(whole == name) for name in ("train", "valid", "test")}
    assert abs(shares["test"] - 0.25) < 0.005 and abs(shares["valid"] - 0.1875) < 0.005
    assert abs(shares["train"] - 0.5625) < 0.005
    other = hash_split(rows, seed=8)
    assert 0.3 < np.mean(other != whole) < 0.7  # another seed, another split


def test_moments_merged_over_row_groups_fit_the_scaler_of_all_train_rows(housing):
    X = housing.X
    train = hash_split(np.arange(len(X)), seed=7) == "train"
    merged = Moments(0, np.zeros(X.shape[1]), np.zeros(X.shape[1]))
    for start in range(0, len(X), 1_500):  # uneven groups, each holding some train rows
        group = slice(start, start + 1_500)
        merged = merged.merged(Moments.of(X[group][train[group]]))
    whole = StandardScaler().fit(X[train])
    assert merged.count == train.sum()
    assert np.allclose(merged.mean, whole.mean_, rtol=0, atol=1e-9 * np.abs(whole.mean_).max())
    assert np.allclose(merged.std, whole.scale_, rtol=1e-9, atol=0)
