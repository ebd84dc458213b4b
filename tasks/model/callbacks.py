"""The training stage's Keras callbacks: the course's three, and what production adds.

The course's: TensorBoard, ModelCheckpoint (best only) and EarlyStopping, all watching the
validation loss. Added: a NaN guard, the per-epoch CSV log and BackupAndRestore (together
they let a crashed training resume at its last finished epoch), a learning-rate schedule,
a per-epoch progress hook, and the fault-injection switch that proves the resume works.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tasks.core.faults import PAUSE_ENV, pause_point

CRASH_ENV = "KERAS_FLOWS_CRASH_AT_EPOCH"
MONITOR = ("val_loss", "min")  # what the course's ModelCheckpoint and EarlyStopping watch


class InjectedCrash(RuntimeError):
    """Raised by the fault-injection switch, to prove that a retried training resumes."""


def crash_at(epoch: int):
    import keras

    def begin(index: int, logs=None) -> None:
        if index + 1 == epoch:
            raise InjectedCrash(f"injected crash at the start of epoch {epoch}")
    return keras.callbacks.LambdaCallback(on_epoch_begin=begin)


def injected_crash() -> int | None:
    """The fault-injection switch: crash at epoch N, on a task's first attempt only."""
    from prefect.runtime import task_run

    epoch = os.environ.get(CRASH_ENV)
    return int(epoch) if epoch and (task_run.run_count or 1) <= 1 else None


def stop_on_nonfinite():
    """TerminateOnNaN checked once per epoch (a NaN batch makes the epoch's mean loss NaN):
    a per-batch Python callback would stop the compiled steps at every batch to ask."""
    import keras

    class _StopOnNonFinite(keras.callbacks.Callback):
        diverged = False

        def on_epoch_end(self, epoch, logs=None):
            if logs and not np.isfinite(float(logs.get("loss", 0.0))):
                self.diverged = self.model.stop_training = True
    return _StopOnNonFinite()


def epoch_logger(logger: logging.Logger | Any, epochs: int) -> Callable[[int, dict[str, float]], None]:
    def log(epoch: int, logs: dict[str, float]) -> None:
        logger.info("epoch %d/%d %s", epoch, epochs, " ".join(f"{k}={v:.4f}" for k, v in logs.items()))
    return log


@dataclass
class Watch:
    """How a training is watched and stopped: the course's EarlyStopping settings and extras."""

    patience: int = 5
    min_delta: float = 0.0
    learning_rate: Callable[[int], float] | None = None  # per epoch; None keeps the optimizer's
    tensorboard_dir: Path | None = None
    on_epoch: Callable[[int, dict[str, float]], None] | None = None
    crash_at_epoch: int | None = None


def resumable_early_stopping(patience: int, min_delta: float, earlier: list[float]):
    """The course's EarlyStopping, which also counts the epochs of earlier attempts.

    Keras's EarlyStopping starts each fit with no best and no wait, so a training resumed
    from its backup (after a crash, or continued to the next rung of a halving search)
    would wait ``patience`` epochs afresh. This one replays the validation losses of the
    epochs already done, by the same rule, so the resumed run stops where one run would.
    """
    import keras

    class _ResumableEarlyStopping(keras.callbacks.EarlyStopping):
        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            for value in earlier:  # mode "min": progress is a drop below the best by more than min_delta
                self.wait += 1
                if self.best is None or value + abs(self.min_delta) < self.best:
                    self.best, self.wait = value, 0

    return _ResumableEarlyStopping(monitor=MONITOR[0], mode=MONITOR[1], patience=patience, min_delta=min_delta,
                                   restore_best_weights=True)


def training_callbacks(workdir: Path, watch: Watch, earlier: list[float], keep_backup: bool = False
                       ) -> tuple[list, Any, Any]:
    """The callbacks of one fit, in the order they must run, and the two to ask afterwards: the
    NaN guard (did it diverge?) and EarlyStopping (did it stop before its last epoch?).

    ``workdir`` holds the best checkpoint, the per-epoch log and the backup; ``earlier`` are the
    validation losses of epochs done by earlier attempts, so a resumed run keeps the better
    checkpoint and EarlyStopping's count; ``keep_backup`` leaves the backup for a later fit
    that continues this one (the next rung of a halving search).
    """
    import keras

    watched, mode = MONITOR
    best_so_far = min(earlier) if earlier else None
    guard, stopper = stop_on_nonfinite(), resumable_early_stopping(watch.patience, watch.min_delta, earlier)
    callbacks = [guard]
    if watch.learning_rate is not None:  # before CSVLogger, which then logs the rate
        callbacks.append(keras.callbacks.LearningRateScheduler(lambda epoch, _: watch.learning_rate(epoch)))
    callbacks += [keras.callbacks.ModelCheckpoint(str(workdir / "best.keras"), monitor=watched, mode=mode,
                                                  save_best_only=True, initial_value_threshold=best_so_far),
                  stopper,
                  keras.callbacks.CSVLogger(str(workdir / "epochs.csv"), append=True),  # before the backup
                  keras.callbacks.BackupAndRestore(str(workdir / "backup"), delete_checkpoint=not keep_backup)]
    if watch.tensorboard_dir is not None:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(watch.tensorboard_dir)))  # per epoch
    if watch.on_epoch is not None:
        callbacks.append(keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: watch.on_epoch(epoch + 1, dict(logs or {}))))
    if watch.crash_at_epoch:
        callbacks.append(crash_at(watch.crash_at_epoch))
    if os.environ.get(PAUSE_ENV, "").startswith("epoch:"):  # fault injection: a host that dies mid-training
        callbacks.append(keras.callbacks.LambdaCallback(on_epoch_begin=lambda index, logs: pause_point(
            f"epoch:{index + 1}")))
    return callbacks, guard, stopper
