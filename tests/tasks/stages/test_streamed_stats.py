"""The per-row-group statistics of the streamed data stages: a split decided row by row from a
seeded hash, and moments merged across groups that equal the whole table's."""
from __future__ import annotations

import numpy as np

from tasks.stages.scale import StandardScaler
from tasks.stages.streamed_stats import Moments, hash_labels


def hash_split(row_id: np.ndarray, seed: int) -> np.ndarray:
    """``hash_labels`` as numpy text, as the split index reads back."""
    return hash_labels(row_id, seed).to_numpy(zero_copy_only=False)


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


def test_the_streamed_split_index_is_a_hash_split_of_the_raw_rows_group_by_group(housing, tmp_path):
    import pandas as pd

    from tasks.stages.split_stream import split_batches
    from tasks.stages.table import load_table
    from tasks.store.artifacts import ArtifactStore
    from tasks.store.dataset import read_index, to_arrow

    df = pd.DataFrame(housing.X[:3_000], columns=list(housing.spec.features))
    df["MedHouseVal"] = housing.y[:3_000]
    df.to_csv(tmp_path / "houses.csv", index=False)
    raw, _ = load_table(tmp_path / "houses.csv", "MedHouseVal", "regression")
    store = ArtifactStore(tmp_path / "store")
    raw_path = store.put_table(to_arrow(raw), "raw").path
    index = read_index(store.put_batches(split_batches(raw_path, batch_rows=700), "split").path)
    assert np.array_equal(index.row_id, raw.row_id) and np.array_equal(index.y, raw.y)
    assert np.array_equal(index.split, hash_split(raw.row_id, raw.spec.split.test_seed))
    assert index.spec.split.method == "hash" and index.spec.features == raw.spec.features
    # a table's own split without valid rows: a quarter of its train rows become valid, by the hash
    df["split"] = np.where(np.arange(3_000) < 2_400, "train", "test")
    df.to_parquet(tmp_path / "own.parquet")
    own, _ = load_table(tmp_path / "own.parquet", "MedHouseVal", "regression")
    path = store.put_table(to_arrow(own), "raw").path
    labels = read_index(store.put_batches(split_batches(path, batch_rows=700), "split").path).split
    assert (labels[2_400:] == "test").all() and 0.2 < np.mean(labels[:2_400] == "valid") < 0.3
