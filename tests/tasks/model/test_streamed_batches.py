"""Training batches read from a scaled artifact a row group at a time (tables larger than
memory): each epoch holds every row of its split once, in a seeded order that changes per epoch;
valid rows come in order; train() fits from them through Keras's fit, on real housing rows."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.model.registry import model_inputs, model_targets
from tasks.model.streamed_batches import ScaledFile, split_batches
from tasks.stages.scale_stream import StreamedScale
from tasks.stages.split_stream import split_batches as split_index
from tasks.stages.table_stream import StreamedTable
from tasks.stages.train import train
from tasks.store.artifacts import ArtifactStore
from tasks.store.dataset import read_frame

TARGET = "MedHouseVal"
GROUP = 300


def scaled_file(housing, tmp_path) -> ScaledFile:
    df = pd.DataFrame(housing.X[:3_000], columns=list(housing.spec.features))
    df[TARGET] = housing.y[:3_000]
    df.to_parquet(tmp_path / "houses.parquet")
    store = ArtifactStore(tmp_path / "store")
    raw = store.put_batches(StreamedTable(tmp_path / "houses.parquet", TARGET, "regression",
                                          batch_rows=GROUP).batches(), "raw")
    index = store.put_batches(split_index(raw.path, batch_rows=GROUP), "split")
    return ScaledFile(store.put_batches(StreamedScale(raw.path, index.path, batch_rows=GROUP).scaled_batches(),
                                        "scaled").path)


def targets(frame):
    return model_inputs(frame, "mlp30"), model_targets(frame, "mlp30")


def epoch(batches, index: int = 0) -> np.ndarray:
    batches.set_epoch(index)
    return np.concatenate([batches[i][1] for i in range(len(batches))])


def test_an_epoch_holds_every_train_row_once_in_a_seeded_order_that_changes_per_epoch(housing, tmp_path):
    scaled = scaled_file(housing, tmp_path)
    assert len(scaled.groups["train"]) > 3
    train_y = read_frame(scaled.path, filters=[("split", "=", "train")]).y
    batches = split_batches(scaled, "train", 64, targets, seed=3, shuffle=True)
    first, second = epoch(batches, 0), epoch(batches, 1)
    assert len(batches) == int(np.ceil(len(train_y) / 64)) and batches[0][0].shape == (64, 8)
    assert np.array_equal(np.sort(first), np.sort(train_y.astype(np.float32)))
    assert np.array_equal(np.sort(second), np.sort(first)) and not np.array_equal(first, second)
    again = split_batches(scaled, "train", 64, targets, seed=3, shuffle=True)
    assert np.array_equal(epoch(again), first)  # the same seed, the same batches
    assert not np.array_equal(epoch(split_batches(scaled, "train", 64, targets, seed=4, shuffle=True)), first)
    assert np.array_equal(batches[5][1], batches[5][1])  # a batch asked for out of order is the same batch


def test_valid_rows_come_in_the_file_s_order(housing, tmp_path):
    scaled = scaled_file(housing, tmp_path)
    valid = read_frame(scaled.path, filters=[("split", "=", "valid")])
    got = epoch(split_batches(scaled, "valid", 100, targets))
    assert np.array_equal(got, valid.y.astype(np.float32))


def test_train_fits_from_the_row_groups_through_keras_fit(housing, tmp_path):
    scaled = scaled_file(housing, tmp_path)
    result = train(scaled, "mlp30", tmp_path / "work", epochs=3, batch_size=32, seed=1)
    history = result.history
    assert list(history["epoch"]) == [1, 2, 3] and np.isfinite(history["val_loss"]).all()
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]
    in_memory = train(read_frame(scaled.path), "mlp30", tmp_path / "work-memory", epochs=3, batch_size=32, seed=1)
    assert abs(history["val_loss"].iloc[-1] - in_memory.history["val_loss"].iloc[-1]) < 0.15


def test_a_crashed_training_from_the_stream_resumes_with_the_uninterrupted_orders(housing, tmp_path):
    from tasks.model.callbacks import InjectedCrash, Watch

    scaled = scaled_file(housing, tmp_path)
    args = dict(epochs=4, batch_size=64, seed=2)
    with pytest.raises(InjectedCrash):
        train(scaled, "mlp30", tmp_path / "resumed", watch=Watch(crash_at_epoch=3), **args)
    resumed = train(scaled, "mlp30", tmp_path / "resumed", **args)
    straight = train(scaled, "mlp30", tmp_path / "straight", **args)
    assert resumed.resumed_at == 3 and list(resumed.history["epoch"]) == [1, 2, 3, 4]
    np.testing.assert_allclose(resumed.history["val_loss"], straight.history["val_loss"], rtol=0, atol=1e-6)
