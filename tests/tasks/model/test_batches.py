"""The training's own batches against Keras's loader: the very same steps, fewer threads."""
import numpy as np
import pytest

import tasks.stages.train
from tasks.model import registry as models
from tasks.model.batches import epoch_batches
from tasks.stages.train import train


def _keras_loader(train, valid, batch_size):
    """What ``fit(x, y, batch_size=...)`` gets without the project's batches: Keras's own pipeline."""
    return {"x": train[0], "y": train[1], "batch_size": batch_size, "validation_data": valid}


@pytest.mark.parametrize("model", ["mlp30", "wide_deep_multi_input", "wide_deep_multi_output",
                                   pytest.param("selu_alphadropout", marks=pytest.mark.slow)])
def test_the_batches_give_keras_s_own_seeded_history_to_the_bit(small_housing, small_fashion, tmp_path, monkeypatch,
                                                                 model):
    """Same rows, same per-epoch shuffle, same partial last batch (2,000 housing rows: 1,160
    train at batch 64 leave 8; 1,000 images at 64 leave 40), dropout and named inputs/heads."""
    frame = small_housing if models.entry(model).task == "regression" else small_fashion
    args = dict(epochs=3, batch_size=64, seed=5)
    ours = train(frame, model, tmp_path / "ours", **args)
    monkeypatch.setattr(tasks.stages.train, "fit_data", _keras_loader)
    theirs = train(frame, model, tmp_path / "keras", **args)
    assert list(ours.history.columns) == list(theirs.history.columns) and len(ours.history) == 3
    np.testing.assert_array_equal(ours.history.to_numpy(), theirs.history.to_numpy())


def test_every_train_row_once_an_epoch_shuffled_and_the_valid_rows_in_order():
    x = np.arange(1_000, dtype=np.float32).reshape(-1, 1)
    train_batches = epoch_batches(x, x[:, 0], batch_size=64, shuffle=True)
    assert [len(b[0]) for b in train_batches][-2:] == [64, 1_000 - 15 * 64]
    order = np.concatenate([b[1].numpy() for b in train_batches])
    assert sorted(order) == list(range(1_000)) and not np.array_equal(order, np.arange(1_000))
    valid = np.concatenate([b[1].numpy() for b in epoch_batches(x, x[:, 0], batch_size=64, shuffle=False)])
    np.testing.assert_array_equal(valid, np.arange(1_000))
