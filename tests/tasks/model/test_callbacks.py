"""The training stage's callbacks: resumable EarlyStopping, the NaN guard, their order, the logger and crash switch."""
from __future__ import annotations

import functools
import logging
import re

import keras
import numpy as np
import pandas as pd
import pytest

from tasks.model import registry as models
from tasks.model.callbacks import (
    CRASH_ENV,
    InjectedCrash,
    Watch,
    epoch_logger,
    injected_crash,
    resumable_early_stopping,
    stop_on_nonfinite,
    training_callbacks,
)

# validation losses, one per epoch: (losses, patience, min_delta)
LOSS_SEQUENCES = [
    pytest.param([1.0, 0.9, 0.8, 0.85, 0.86, 0.87, 0.88, 0.89, 0.90, 0.91], 3, 0.0, id="rising-after-epoch-3"),
    pytest.param([1.0, 0.9, 0.95, 0.96, 0.7, 0.75, 0.76, 0.77, 0.78, 0.79], 3, 0.0, id="a-late-best-resets-the-wait"),
    pytest.param([1.0, 0.97, 0.95, 0.93, 0.92, 0.91, 0.90, 0.89, 0.88, 0.87], 2, 0.02, id="drops-below-min-delta"),
    pytest.param([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5], 2, 0.0, id="equal-losses-are-no-progress"),
    pytest.param([2.0, 1.5, 1.2, 1.1, 1.05, 1.0, 0.98, 0.97, 0.969, 0.9, 0.905, 0.903, 0.895, 0.891, 0.89], 4, 0.01,
                 id="slow-descent"),
    # noisy descents, then a plateau so that every one stops
    *[pytest.param([*(1.0 + np.cumsum(np.random.default_rng(seed).normal(-0.02, 0.05, 25))), *[9.0] * 6], patience,
                   0.01, id=f"random-walk-{seed}") for seed, patience in ((0, 3), (1, 5), (2, 2), (3, 4))],
]


@functools.cache
def _one_dense_layer() -> keras.Model:
    return keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])


def _tiny_model() -> keras.Model:
    """EarlyStopping with restore_best_weights asks its model for weights and sets stop_training."""
    model = _one_dense_layer()
    model.stop_training = False
    return model


def _stopped_at(stopper, losses: list[float], first_epoch: int = 0) -> int | None:
    """Feed ``losses`` (epochs ``first_epoch``...) to an EarlyStopping as one fit would; the
    epoch it stops the training at, or None if it never does."""
    model = _tiny_model()
    stopper.set_model(model)
    stopper.on_train_begin()
    for epoch, value in enumerate(losses, start=first_epoch):
        stopper.on_epoch_end(epoch, {"val_loss": value})
        if model.stop_training:
            return epoch
    return None


def _keras_early_stopping(patience: int, min_delta: float) -> keras.callbacks.EarlyStopping:
    return keras.callbacks.EarlyStopping(monitor="val_loss", mode="min", patience=patience, min_delta=min_delta)


def _fit(frame, callbacks, epochs: int, *, initial_epoch: int = 0, hparams=None) -> keras.callbacks.History:
    """A real fit of the course's regression network on the scaled slice of California housing."""
    keras.utils.set_random_seed(1)
    net = models.build("mlp30", models.input_shapes("mlp30", frame.spec.features, frame.spec.feature_shape), 1,
                       hparams, seed=1)
    train, valid = frame.part("train"), frame.part("valid")
    return net.fit(train.inputs(), train.y.astype(np.float32), batch_size=64, epochs=epochs,
                   initial_epoch=initial_epoch, validation_data=(valid.inputs(), valid.y.astype(np.float32)),
                   callbacks=callbacks, verbose=0)


@pytest.mark.parametrize("losses, patience, min_delta", LOSS_SEQUENCES)
def test_a_resumed_early_stopping_stops_where_keras_own_stops_one_uninterrupted_fit(losses, patience, min_delta):
    straight = _stopped_at(_keras_early_stopping(patience, min_delta), losses)
    assert straight is not None  # each sequence is one Keras stops early
    for resumed_at in range(1, straight + 1):  # a crash (or a halving pause) after any earlier epoch
        stopper = resumable_early_stopping(patience, min_delta, earlier=losses[:resumed_at])
        assert _stopped_at(stopper, losses[resumed_at:straight + 1], first_epoch=resumed_at) == straight, resumed_at


def test_without_the_replay_a_resumed_fit_would_wait_its_patience_afresh():
    """What the replay is for: Keras's own callback, resumed, stops later than one straight run."""
    losses, patience = [1.0, 0.9, 0.8, 0.85, 0.86, 0.87, 0.88, 0.89, 0.90, 0.91], 3
    straight = _stopped_at(_keras_early_stopping(patience, 0.0), losses)
    assert straight == 5
    assert _stopped_at(_keras_early_stopping(patience, 0.0), losses[4:], first_epoch=4) == 7
    assert _stopped_at(resumable_early_stopping(patience, 0.0, earlier=losses[:4]), losses[4:], first_epoch=4) == 5


def test_the_replay_keeps_the_earlier_best_and_the_epochs_waited_since():
    stopper = resumable_early_stopping(patience=5, min_delta=0.05, earlier=[1.0, 0.8, 0.77, 0.9])
    stopper.set_model(_tiny_model())
    stopper.on_train_begin()
    assert (stopper.best, stopper.wait) == (0.8, 2)  # 0.77 is within min_delta of 0.8: no progress
    assert (stopper.monitor, stopper.mode, stopper.patience, stopper.restore_best_weights) == ("val_loss", "min", 5,
                                                                                                 True)
    fresh = resumable_early_stopping(patience=5, min_delta=0.0, earlier=[])
    fresh.set_model(_tiny_model())
    fresh.on_train_begin()
    assert (fresh.best, fresh.wait) == (None, 0)  # a first attempt: Keras's own start


def test_a_real_resumed_fit_stops_at_its_first_epoch_when_the_earlier_ones_used_up_the_patience(small_housing):
    """Epochs 1-3 ran before the crash (the best long ago, two epochs waited since); patience 3
    ends the resumed fit after its first epoch (Keras's own callback would wait three)."""
    earlier = [0.01, 5.0, 5.0]  # no real epoch gets near 0.01
    resumed = _fit(small_housing, [resumable_early_stopping(3, 0.0, earlier)], epochs=10, initial_epoch=3)
    assert len(resumed.history["val_loss"]) == 1 and resumed.epoch == [3]


@pytest.mark.parametrize("loss", [float("nan"), float("inf"), -float("inf")])
def test_the_guard_marks_a_nonfinite_epoch_loss_as_diverged_and_stops(loss):
    guard, model = stop_on_nonfinite(), _tiny_model()
    guard.set_model(model)
    guard.on_epoch_end(0, {"loss": 1.0, "val_loss": 2.0})
    assert not guard.diverged and not model.stop_training
    guard.on_epoch_end(1, {"loss": loss, "val_loss": 2.0})
    assert guard.diverged and model.stop_training


def test_the_guard_ignores_an_epoch_without_logs():
    guard, model = stop_on_nonfinite(), _tiny_model()
    guard.set_model(model)
    guard.on_epoch_end(0, None)
    guard.on_epoch_end(1, {})
    assert not guard.diverged and not model.stop_training


def test_a_real_diverging_fit_ends_with_the_epoch_whose_loss_became_nan(small_housing):
    guard = stop_on_nonfinite()
    history = _fit(small_housing, [guard], epochs=6, hparams={"learning_rate": 1e12})
    losses = history.history["loss"]
    assert guard.diverged and len(losses) < 6
    assert not np.isfinite(losses[-1]) and np.isfinite(losses[:-1]).all()  # it finished that epoch, no more


def test_the_callbacks_run_in_the_order_the_resume_needs(tmp_path):
    callbacks, guard, stopper = training_callbacks(
        tmp_path, Watch(patience=7, learning_rate=lambda epoch: 0.01, tensorboard_dir=tmp_path / "tb",
                        on_epoch=lambda epoch, logs: None, crash_at_epoch=4), earlier=[0.5, 0.4, 0.45])
    kinds = [type(c).__name__ for c in callbacks]
    cb = keras.callbacks
    position = {kind: next(i for i, c in enumerate(callbacks) if isinstance(c, kind))
                for kind in (cb.LearningRateScheduler, cb.ModelCheckpoint, cb.CSVLogger, cb.BackupAndRestore,
                             cb.TensorBoard)}
    assert callbacks[0] is guard and stopper in callbacks and stopper.patience == 7
    assert position[cb.LearningRateScheduler] < position[cb.CSVLogger]  # the log has each epoch's rate
    assert position[cb.CSVLogger] < position[cb.BackupAndRestore]  # no backed-up epoch missing from the log
    assert kinds[-2:] == ["LambdaCallback", "LambdaCallback"]  # the progress hook, then the crash switch
    checkpoint = callbacks[position[cb.ModelCheckpoint]]
    assert checkpoint.filepath == str(tmp_path / "best.keras") and checkpoint.save_best_only
    assert checkpoint.best == 0.4  # an earlier attempt's best epoch is the one to beat
    backup = callbacks[position[cb.BackupAndRestore]]
    assert backup.delete_checkpoint  # a finished training leaves no backup behind


def test_the_minimal_callbacks_are_the_guard_checkpoint_stopper_log_and_backup(tmp_path):
    callbacks, guard, stopper = training_callbacks(tmp_path, Watch(), earlier=[])
    assert [type(c).__name__ for c in callbacks[:1] + callbacks[2:]] == ["_StopOnNonFinite", "_ResumableEarlyStopping",
                                                                          "CSVLogger", "BackupAndRestore"]
    assert isinstance(callbacks[1], keras.callbacks.ModelCheckpoint) and callbacks[1].best is None


def test_a_real_fit_logs_each_epochs_rate_and_reports_its_epochs_counted_from_one(small_housing, tmp_path, caplog):
    log = logging.getLogger("tests.epochs")
    caplog.set_level(logging.INFO, logger=log.name)
    rate = lambda epoch: 0.01 * 0.5 ** epoch  # noqa: E731
    callbacks, guard, stopper = training_callbacks(
        tmp_path, Watch(learning_rate=rate, on_epoch=epoch_logger(log, 3)), earlier=[], keep_backup=True)
    _fit(small_housing, callbacks, epochs=3)
    epochs = pd.read_csv(tmp_path / "epochs.csv")
    assert list(epochs["epoch"]) == [0, 1, 2]
    np.testing.assert_allclose(epochs["learning_rate"], [0.01, 0.005, 0.0025], rtol=1e-6)  # what the optimizer used
    line = r"epoch {}/3 loss=\d+\.\d{{4}} val_loss=\d+\.\d{{4}} learning_rate={}"
    assert len(caplog.messages) == 3
    assert all(re.fullmatch(line.format(n, f"{rate(n - 1):.4f}"), m) for n, m in zip((1, 2, 3), caplog.messages)), \
        caplog.messages
    assert not guard.diverged and stopper.stopped_epoch == 0
    assert (tmp_path / "best.keras").is_file()
    assert (tmp_path / "backup").is_dir()  # kept: a paused halving rung continues from it


def test_a_resumed_fit_does_not_replace_a_better_checkpoint_of_an_earlier_attempt(small_housing, tmp_path):
    for workdir in ("resumed", "first"):
        (tmp_path / workdir).mkdir()
    callbacks, _, _ = training_callbacks(tmp_path / "resumed", Watch(), earlier=[1e-9])
    _fit(small_housing, callbacks, epochs=1)
    assert not (tmp_path / "resumed" / "best.keras").exists()  # no epoch beat the earlier best
    callbacks, _, _ = training_callbacks(tmp_path / "first", Watch(), earlier=[])
    _fit(small_housing, callbacks, epochs=1)
    assert (tmp_path / "first" / "best.keras").is_file()
    assert not (tmp_path / "first" / "backup").exists()  # finished, and no later fit continues it


def test_the_epoch_logger_writes_one_line_an_epoch_with_four_decimals(caplog):
    log = logging.getLogger("tests.epochs")
    caplog.set_level(logging.INFO, logger=log.name)
    epoch_logger(log, 12)(3, {"loss": 0.123456, "val_loss": 1.0, "learning_rate": 0.00005})
    assert caplog.messages == ["epoch 3/12 loss=0.1235 val_loss=1.0000 learning_rate=0.0001"]


def test_the_crash_switch_is_off_unless_its_variable_names_an_epoch(monkeypatch):
    monkeypatch.delenv(CRASH_ENV, raising=False)
    assert injected_crash() is None
    monkeypatch.setenv(CRASH_ENV, "")
    assert injected_crash() is None


def test_outside_a_task_run_counts_as_a_first_attempt_and_the_crash_comes_at_that_epoch(
        small_housing, tmp_path, monkeypatch):
    """Outside Prefect, ``task_run.run_count`` is 0: the first attempt's switch is on. (The retried
    attempt that must not crash is run by tests/flows/test_production.py, through a real flow.)"""
    from prefect.runtime import task_run

    monkeypatch.setenv(CRASH_ENV, "2")
    assert task_run.run_count == 0 and injected_crash() == 2
    callbacks, _, _ = training_callbacks(tmp_path, Watch(crash_at_epoch=injected_crash()), earlier=[])
    with pytest.raises(InjectedCrash, match="at the start of epoch 2"):
        _fit(small_housing, callbacks, epochs=4)
    assert len(pd.read_csv(tmp_path / "epochs.csv")) == 1  # epoch 1 finished and was logged, epoch 2 never ran
    assert (tmp_path / "backup").exists()  # what the retry resumes from
