"""Training: fit a registry model on the scaled train split, select on the valid split.

The course's callbacks: TensorBoard, ModelCheckpoint (best only, ``.keras``) and
EarlyStopping. The model kept is the best checkpoint on the validation split (accuracy
for classifiers, loss for regressors), so the test set plays no part in choosing it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import random
import shutil
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks import models
from tasks.dataset import Frame, read_frame
from tasks.params import TrainParams
from tasks.stage import StageRun, logger, no_retry_on
from tasks.store import ArtifactRef, ArtifactStore


@dataclass
class TrainResult:
    model_path: Path
    history: pd.DataFrame  # one row per epoch: epoch, loss, val_loss, ...
    seconds: float
    n_outputs: int
    params: int
    resumed_at: int = 1  # first epoch this attempt ran (> 1 after a resume)


def n_outputs(frame: Frame) -> int:
    if frame.spec.task == "regression":
        return 1
    return len(frame.spec.classes) if frame.spec.classes else int(np.max(frame.y)) + 1


def monitor(task: str) -> tuple[str, str]:
    """What selects the model on the validation split, and which way is better."""
    return ("val_accuracy", "max") if task == "classification" else ("val_loss", "min")


def targets(frame: Frame) -> np.ndarray:
    return frame.y.astype(np.float32 if frame.spec.task == "regression" else np.int64)


def model_inputs(frame: Frame, model: str) -> np.ndarray | dict[str, np.ndarray]:
    """The arrays a registry model takes: all features, or its declared named inputs."""
    declared = models.entry(model).inputs
    if declared is None:
        return frame.inputs()
    models.input_shapes(model, frame.spec.features, frame.spec.feature_shape)  # names the missing
    column = {name: i for i, name in enumerate(frame.spec.features)}
    return {key: frame.X[:, [column[c] for c in cols]] for key, cols in declared.items()}


def model_targets(frame: Frame, model: str) -> np.ndarray | dict[str, np.ndarray]:
    """The target, once per declared head (the course trains both heads on the same target)."""
    y, heads = targets(frame), models.entry(model).outputs
    return {head: y for head in heads} if heads else y


class InjectedCrash(RuntimeError):
    """Raised by the fault-injection switch, to prove that a retried training resumes."""


def _crash_at(epoch: int):
    import keras

    def begin(index: int, logs=None) -> None:
        if index + 1 == epoch:
            raise InjectedCrash(f"injected crash at the start of epoch {epoch}")
    return keras.callbacks.LambdaCallback(on_epoch_begin=begin)


def stop_on_nonfinite():
    """TerminateOnNaN checked once per epoch (a NaN batch makes the epoch's mean loss NaN):
    a per-batch Python callback would cost ~0.2 ms on each of 1,719 steps an epoch."""
    import keras

    class _StopOnNonFinite(keras.callbacks.Callback):
        diverged = False

        def on_epoch_end(self, epoch, logs=None):
            if logs and not np.isfinite(float(logs.get("loss", 0.0))):
                self.diverged = self.model.stop_training = True
    return _StopOnNonFinite()


@lru_cache(maxsize=1)
def epoch_tensorboard():
    """Keras's TensorBoard, minus its per-batch summary calls when it records per epoch.

    With ``update_freq="epoch"`` Keras 3 still calls ``summary.scalar`` for every batch
    metric inside ``record_if(False)``: nothing is written, but it costs ~2.8 s over 10
    Fashion-MNIST epochs (measured with py-spy). Graph and profiler handling stay Keras's.
    """
    import keras

    class EpochTensorBoard(keras.callbacks.TensorBoard):
        def on_train_batch_end(self, batch, logs=None):
            if self.update_freq == "epoch" and not self._should_trace and not self._should_write_train_graph:
                return
            super().on_train_batch_end(batch, logs)
    return EpochTensorBoard


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """``keras.utils.set_random_seed``, with Keras's default seeds drawn from a private generator.

    Keras draws each initializer's default seed from Python's global ``random``, which other
    threads share: websockets' keepalive ping in Prefect's event-loop thread calls
    ``random.getrandbits`` every 20 s, and one landing while a model was built changed its
    initial weights (a seeded run was not reproducible; seen as a flaky resume test). The
    private generator gives the same draws as the seeded global one would, undisturbed.
    Keras 3.15 draws through ``keras.src.random.seed_generator.python_random``.
    """
    import keras
    from keras.src.random import seed_generator

    keras.utils.set_random_seed(seed)
    shared, seed_generator.python_random = seed_generator.python_random, random.Random(seed)
    try:
        yield
    finally:
        seed_generator.python_random = shared


def _epochs_done(log: Path) -> pd.DataFrame:
    """Epochs finished by earlier attempts (CSVLogger rows; a re-run epoch keeps its last row)."""
    if not log.exists() or log.stat().st_size == 0:
        return pd.DataFrame()
    return pd.read_csv(log).drop_duplicates("epoch", keep="last").reset_index(drop=True)


def train(scaled: Frame, model: str, workdir: Path, *, epochs: int, batch_size: int, seed: int,
          patience: int = 10, hparams: dict[str, Any] | None = None, tensorboard_dir: Path | None = None,
          on_epoch: Callable[[int, dict[str, float]], None] | None = None,
          crash_at_epoch: int | None = None) -> TrainResult:
    """Fit ``model`` on train, monitor valid; return the best checkpoint and the history.

    ``workdir`` holds a BackupAndRestore backup and a per-epoch log: calling again with the
    same ``workdir`` after a crash resumes at the first unfinished epoch, not from zero.
    """
    import keras

    models.entry(model, scaled.spec.task)  # fail early on a model of the wrong kind
    with seeded(seed):  # from here to the end of fit, Keras draws only from this seed
        train_part, valid_part = scaled.part("train"), scaled.part("valid")
        outputs = n_outputs(scaled)
        shapes = models.input_shapes(model, scaled.spec.features, scaled.spec.feature_shape)
        net = models.build(model, shapes, outputs, hparams)
        hp = models.hyperparameters(model, hparams)
        scheduled = models.schedule_of(hp) != "constant"  # an unknown schedule fails here, before any write
        workdir.mkdir(parents=True, exist_ok=True)
        checkpoint, log = workdir / "best.keras", workdir / "epochs.csv"
        before = _epochs_done(log)
        watched, mode = monitor(scaled.spec.task)
        best_so_far = float(getattr(before[watched], mode)()) if len(before) else None
        guard = stop_on_nonfinite()
        callbacks = [guard]
        if scheduled:  # before CSVLogger, which then logs the rate
            callbacks.append(keras.callbacks.LearningRateScheduler(
                lambda e, _: models.learning_rate_at(hp, e, epochs)))
        callbacks += [keras.callbacks.ModelCheckpoint(str(checkpoint), monitor=watched, mode=mode,
                                                      save_best_only=True, initial_value_threshold=best_so_far),
                      keras.callbacks.EarlyStopping(monitor=watched, mode=mode, patience=patience,
                                                    restore_best_weights=True),
                      keras.callbacks.CSVLogger(str(log), append=True),  # before the backup: see _epochs_done
                      keras.callbacks.BackupAndRestore(str(workdir / "backup"))]
        if tensorboard_dir is not None:
            callbacks.append(epoch_tensorboard()(log_dir=str(tensorboard_dir)))
        if on_epoch is not None:
            callbacks.append(keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: on_epoch(epoch + 1, dict(logs or {}))))
        if crash_at_epoch:
            callbacks.append(_crash_at(crash_at_epoch))
        start = time.perf_counter()
        net.fit(model_inputs(train_part, model), model_targets(train_part, model), epochs=epochs,
                batch_size=batch_size,
                validation_data=(model_inputs(valid_part, model), model_targets(valid_part, model)),
                callbacks=callbacks, verbose=0)
        seconds = time.perf_counter() - start
    if guard.diverged or not checkpoint.exists():
        raise FloatingPointError(f"{model}: the training loss became NaN or infinite (training diverged); "
                                 f"lower --learning-rate")
    history = _epochs_done(log)
    history["epoch"] = history["epoch"].astype(int) + 1
    return TrainResult(checkpoint, history, seconds, outputs, net.count_params(), resumed_at=len(before) + 1)


def plot_history(history: pd.DataFrame, path: Path, title: str) -> Path:
    """The course's learning-curve plot: every metric per epoch, train and valid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for column in history.columns.drop("epoch"):
        ax.plot(history["epoch"], history[column], marker="o", markersize=3, label=column,
                linestyle="--" if column.startswith("val_") else "-")
    ax.set_xlabel("epoch"); ax.set_title(title); ax.grid(True); ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def epoch_logger(logger: logging.Logger | Any, epochs: int) -> Callable[[int, dict[str, float]], None]:
    def log(epoch: int, logs: dict[str, float]) -> None:
        logger.info("epoch %d/%d %s", epoch, epochs, " ".join(f"{k}={v:.4f}" for k, v in logs.items()))
    return log


CRASH_ENV = "KERAS_FLOWS_CRASH_AT_EPOCH"


def _injected_crash() -> int | None:
    """The fault-injection switch: crash at epoch N, on a task's first attempt only."""
    from prefect.runtime import task_run

    epoch = os.environ.get(CRASH_ENV)
    return int(epoch) if epoch and (task_run.run_count or 1) <= 1 else None


@task(name="train", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1,
      retry_condition_fn=no_retry_on(FloatingPointError, ValueError))
def train_task(scaled: ArtifactRef, params: TrainParams, artifacts: str, force: bool = False
               ) -> dict[str, ArtifactRef]:
    """Train on the scaled train/valid rows; store the best model, its history and curve.

    The work folder is named by the stage's cache key, so a retry (or a re-run of a failed
    flow) resumes from the last finished epoch; it is removed once the outputs are stored.
    """
    store = ArtifactStore(artifacts)

    def produce(run: StageRun) -> dict[str, ArtifactRef]:
        frame = read_frame(scaled.path)  # whole file, no copy; train() takes views of train and valid
        workdir = store.root / ".train" / run.cache_key
        if force:
            shutil.rmtree(workdir, ignore_errors=True)
        board = store.root / "tensorboard" / f"{frame.spec.name}-{params.model}-{run.cache_key[:12]}"
        result = train(frame, params.model, workdir, epochs=params.epochs, batch_size=params.batch_size,
                       seed=params.seed, patience=params.patience, hparams=params.hparams(),
                       tensorboard_dir=board, on_epoch=epoch_logger(logger(), params.epochs),
                       crash_at_epoch=_injected_crash())
        logger().info("trained %s for %d epochs in %.1f s (this attempt from epoch %d)", params.model,
                      len(result.history), result.seconds, result.resumed_at)
        curve = plot_history(result.history, workdir / "learning_curve.png", f"{frame.spec.name}: {params.model}")
        refs = {
            "model": run.put_file(result.model_path, summary={
                "train_seconds": result.seconds, "epochs_run": len(result.history), "params": result.params,
                "resumed_at_epoch": result.resumed_at,
                "best_val_loss": float(result.history["val_loss"].min()),
                "selected_on": monitor(frame.spec.task)[0]}, tensorboard=str(board)),
            "history": run.put_table(pa.Table.from_pandas(result.history, preserve_index=False), stage="history"),
            "curve": run.put_file(curve, stage="curve"),
        }
        shutil.rmtree(workdir, ignore_errors=True)
        return refs

    import keras

    # the backend is part of the key: a model trained under TensorFlow is not a JAX run's result
    return StageRun(store, "model", __name__, parents=[scaled],
                    params={**dataclasses.asdict(params), "keras_backend": keras.backend.backend()},
                    seed=params.seed).run(produce, force)
