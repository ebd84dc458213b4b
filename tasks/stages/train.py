"""Training: fit a registry model on the scaled train split, select on the valid split.

The course's callbacks (``tasks/model/callbacks.py``) watch the validation loss; the model kept
is the best checkpoint on the validation split, so the test set plays no part in choosing
it. The checkpoint is saved reproducibly (``tasks/model/files.py``): the same training
gives the same bytes, and so the same content hash.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core.errors import InputError, OptionError
from tasks.core.params import TrainParams
from tasks.model import files as model_files
from tasks.model import registry as models
from tasks.model.batches import fit_data
from tasks.model.callbacks import MONITOR, Watch, epoch_logger, injected_crash, training_callbacks
from tasks.model.devices import Placement, check_replicas, data_parallel, uneven_last_batch
from tasks.model.streamed_batches import ScaledFile, epoch_callback, split_batches
from tasks.model.target_units import in_target_units, training_arrays
from tasks.model.tf_logging import quiet_false_retracing
from tasks.stages.plots import plot_history
from tasks.stages.train_hosts import train_on_hosts
from tasks.store.artifacts import TENSORBOARD, ArtifactRef, ArtifactStore
from tasks.store.dataset import DatasetSpec, Frame, read_frame, spec_of
from tasks.store.lineage import Training
from tasks.store.sources import parquet_file, read_schema
from tasks.store.stage import StageRun, logger, no_retry_on, reported


class TrainingDiverged(InputError, FloatingPointError):
    """The loss became NaN or infinite: the options (a learning rate too high) must change."""


@dataclass
class TrainResult:
    model_path: Path
    history: pd.DataFrame  # one row per epoch: epoch, loss, val_loss, ...
    seconds: float
    n_outputs: int
    weights: int  # trainable and other parameters of the network
    hyperparameters: dict[str, Any]  # the effective ones: the entry's defaults under the overrides
    resumed_at: int = 1  # first epoch this attempt ran (> 1 after a resume)
    stopped_early: bool = False  # EarlyStopping ended it before its epochs (or its stop_at)
    placement: Placement | None = None  # the backend, devices and per-device batch it ran on


def _epochs_done(log: Path) -> pd.DataFrame:
    """Epochs finished by earlier attempts (CSVLogger rows; a re-run epoch keeps its last row)."""
    if not log.exists() or log.stat().st_size == 0:
        return pd.DataFrame()
    return pd.read_csv(log).drop_duplicates("epoch", keep="last").reset_index(drop=True)


def train(scaled: Frame | ScaledFile, model: str, workdir: Path, *, epochs: int, batch_size: int, seed: int,
          hparams: dict[str, Any] | None = None, watch: Watch | None = None, stop_at: int | None = None,
          steps_per_execution: int = TrainParams.steps_per_execution, devices: int = 1) -> TrainResult:
    """Fit ``model`` on train, monitor valid; return the best checkpoint and the history.

    ``workdir`` holds a BackupAndRestore backup and a per-epoch log: calling again with the
    same ``workdir`` after a crash resumes at the first unfinished epoch, not from zero.
    ``stop_at`` pauses the training after that many of its ``epochs`` (a halving rung) and
    keeps the backup: a later call with a larger ``stop_at`` continues the same training
    (the learning-rate schedule still spans all ``epochs``). ``steps_per_execution`` batches
    run per compiled call: the same steps as one at a time, dispatched fewer times. ``devices``:
    data-parallel on that many devices, ``batch_size`` the global batch (``tasks/model/devices.py``).
    """
    import keras

    models.entry(model, scaled.spec.task)  # fail early on a model of the wrong kind
    watch = watch or Watch()
    # Layer names count up per process (dense_3, dense_5...) and are saved in the model file:
    # a fresh session makes the same training give the same names, so the same bytes.
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)  # the shuffles and TensorFlow's ops; the layers get their own seeds
    quiet_false_retracing()
    outputs = models.n_outputs(scaled.spec, scaled.largest_target if isinstance(scaled, ScaledFile) else scaled.y)
    shapes = models.input_shapes(model, scaled.spec.features, scaled.spec.feature_shape)
    with data_parallel(devices, batch_size) as placement:  # the model built, compiled and fitted on its devices
        net = models.build(model, shapes, outputs, hparams, steps_per_execution if devices == 1 else 1, seed)
        check_replicas(net, placement)
        hp = models.hyperparameters(model, hparams)
        if models.schedule_of(hp) != "constant":  # an unknown schedule fails here, before any write
            watch = dataclasses.replace(watch, learning_rate=lambda e: models.learning_rate_at(hp, e, epochs))
        before = _epochs_done(workdir / "epochs.csv")
        if len(before) > (stop_at or epochs):  # left by a longer training: not a state to resume
            shutil.rmtree(workdir)
            before = _epochs_done(workdir / "epochs.csv")
        workdir.mkdir(parents=True, exist_ok=True)
        pause = stop_at is not None and stop_at < epochs
        earlier = before[MONITOR[0]].tolist() if len(before) else []
        callbacks, guard, stopper = training_callbacks(workdir, watch, earlier, keep_backup=pause)
        start = time.perf_counter()
        data = _fit_data(scaled, model, batch_size, seed)
        if isinstance(scaled, ScaledFile):  # its shuffle follows Keras's epoch index
            callbacks = [epoch_callback(data["x"]), *callbacks]
        net.fit(**data, epochs=stop_at if pause else epochs, callbacks=callbacks, verbose=0)
    return _result(workdir, model, scaled.spec, outputs, guard.diverged, time.perf_counter() - start, hp,
                   weights=net.count_params(), resumed_at=len(before) + 1, stopped_early=stopper.stopped_epoch > 0,
                   placement=placement)


def _result(workdir: Path, model: str, spec, outputs: int, diverged: bool, seconds: float, hp: dict[str, Any],
            weights: int | None = None, **facts: Any) -> TrainResult:
    """What a finished training leaves in ``workdir`` (its best checkpoint and epoch log) as a result:
    the model answering in the target's units where it learnt it standardised, saved reproducibly."""
    checkpoint = workdir / "best.keras"
    if diverged or not checkpoint.exists():
        raise TrainingDiverged(f"{model}: the training loss became NaN or infinite (training diverged); "
                               f"lower --learning-rate")
    history = _epochs_done(workdir / "epochs.csv")
    history["epoch"] = history["epoch"].astype(int) + 1
    if spec.target_scaling:  # the stored model answers in the target's units; the checkpoint stays as trained
        answered = workdir / "in_target_units.keras"
        shapes = models.input_shapes(model, spec.features, spec.feature_shape)
        in_target_units(model_files.load(checkpoint), shapes, spec.target_scaling, models.entry(model).outputs
                        ).save(answered)
        checkpoint = answered
    weights = weights if weights is not None else model_files.load(checkpoint).count_params()
    return TrainResult(model_files.normalise(checkpoint), history, seconds, outputs, weights, hp, **facts)


def _over_hosts(store: ArtifactStore, scaled: ArtifactRef, params: TrainParams, backup: str, artifacts: str,
                spec: DatasetSpec) -> TrainResult:
    """The training spread over ``params.hosts`` processes (``tasks/stages/train_hosts.py``), each
    reading the scaled table itself: this process reads only its target column (the class count)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        raise OptionError(f"--hosts {params.hosts}: runs on Keras's TensorFlow backend (its "
                          f"MultiWorkerMirroredStrategy), not {keras.backend.backend()}")
    if models.entry(params.model).outputs or spec.streamed:
        raise OptionError(f"--hosts {params.hosts}: spreads a model of one output trained on a table held in memory; "
                          f"{params.model} has several outputs" if models.entry(params.model).outputs else
                          f"--hosts {params.hosts}: not for a table larger than memory (streamed) yet")
    start = time.perf_counter()
    said = train_on_hosts(store, scaled, params, backup, artifacts)
    store.pull_folder(backup, every=True)  # the chief's checkpoint and log, where it ran on another machine
    placement = Placement("tensorflow", tuple(f"{worker}/CPU:0" for worker in said["workers"]),
                          -(-params.batch_size // params.hosts), params.hosts)  # the largest share
    targets = parquet_file(scaled.path).read(columns=[spec.target]).column(0).to_numpy()
    result = _result(store.root / backup, params.model, spec, models.n_outputs(spec, targets), said["diverged"],
                     time.perf_counter() - start, models.hyperparameters(params.model, params.hparams()),
                     resumed_at=said["resumed_at"], placement=placement)
    return dataclasses.replace(result, stopped_early=len(result.history) < params.epochs)


def _fit_data(scaled: Frame | ScaledFile, model: str, batch_size: int, seed: int) -> dict[str, Any]:
    """``fit``'s data arguments: the train and valid rows as arrays, or, for a scaled artifact left
    on disk (a table larger than memory), as batches read a row group at a time; the target
    standardised where the spec says (tasks/model/target_units.py)."""
    def arrays(part: Frame) -> tuple[Any, Any]:
        return training_arrays(part, model, scaled.spec.target_scaling)

    if isinstance(scaled, ScaledFile):
        return {"x": split_batches(scaled, "train", batch_size, arrays, seed, shuffle=True),
                "validation_data": split_batches(scaled, "valid", batch_size, arrays), "shuffle": False}
    return fit_data(arrays(scaled.part("train")), arrays(scaled.part("valid")), batch_size)


@task(name="train", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1,
      retry_condition_fn=no_retry_on(InputError, ValueError))  # what fails again if retried
def train_task(scaled: ArtifactRef, params: TrainParams, artifacts: str, force: bool = False,
               budget: int | None = None) -> dict[str, ArtifactRef]:
    """Train on the scaled train/valid rows; store the best model, its history and curve.

    The work folder is named by the training's key (its stage key without ``budget``), so a
    retry (or a re-run of a failed flow) resumes from the last finished epoch, and a halving
    rung (``budget`` epochs of the ``params.epochs``) continues the rung before; it is removed
    once a training has finished (all its epochs, or stopped early) and its outputs are stored.
    """
    store = ArtifactStore(artifacts)
    pause = budget if budget is not None and budget < params.epochs else None
    training = _training(store, scaled, params)
    run = dataclasses.replace(training, params={**training.params, "budget": pause}) if pause else training

    def produce(run: StageRun) -> dict[str, ArtifactRef]:
        # whole file, no copy, train() taking views of train and valid; or left on disk, a table larger than memory
        # (fetched whole from a bucket first: every epoch reads it again; over several processes, each fetches it)
        here = store.here(scaled, whole=params.hosts == 1)
        spec = spec_of(read_schema(here.path))
        frame = None if params.hosts > 1 else ScaledFile(here.path) if spec.streamed else read_frame(here.path)
        if params.devices > 1:  # (a streamed table's rows counted from its split column)
            import keras

            rows = {split: frame.rows(split) if isinstance(frame, ScaledFile) else int((frame.split == split).sum())
                    for split in ("train", "valid")}
            if uneven := uneven_last_batch(rows, params.batch_size, params.devices, keras.backend.backend()):
                logger().warning("--devices %d: %s", params.devices, uneven)
        backup = f".train/{training.cache_key}"  # in the bucket too, for a URL store: any host resumes it
        workdir = store.root / backup
        if force and pause is None:
            store.drop_folder(backup)
        store.pull_folder(backup, every=True)
        log_epoch = epoch_logger(logger(), params.epochs)

        def on_epoch(epoch: int, logs: dict[str, float]) -> None:  # after the epoch's backup is written
            log_epoch(epoch, logs)
            store.push_folder(workdir)

        board = store.root / TENSORBOARD / f"{spec.name}-{params.model}-{training.cache_key[:12]}"
        watch = Watch(patience=params.patience, min_delta=params.min_delta, tensorboard_dir=board,
                      on_epoch=on_epoch, crash_at_epoch=injected_crash())
        result = _over_hosts(store, here, params, backup, artifacts, spec) if params.hosts > 1 else \
            train(frame, params.model, workdir, epochs=params.epochs, batch_size=params.batch_size, seed=params.seed,
                  hparams=params.hparams(), watch=watch, stop_at=pause,
                  steps_per_execution=params.steps_per_execution, devices=params.devices)
        logger().info("trained %s for %d epochs in %.1f s (this attempt from epoch %d)", params.model,
                      len(result.history), result.seconds, result.resumed_at)
        store.push_folder(board)
        curve = plot_history(result.history, workdir / "learning_curve.png", f"{spec.name}: {params.model}")
        facts = Training(model=params.model, train_seconds=result.seconds, epochs_run=len(result.history),
                         weights=result.weights,
                         resumed_at_epoch=result.resumed_at, best_val_loss=float(result.history["val_loss"].min()),
                         selected_on=MONITOR[0], tensorboard=store.url(board) if params.hosts == 1 else None,
                         worker=worker(),
                         stopped_early=result.stopped_early, hyperparameters=result.hyperparameters,
                         **dataclasses.asdict(result.placement))
        refs = {
            "model": run.put_file(result.model_path, training=facts),
            "history": run.put_table(pa.Table.from_pandas(result.history, preserve_index=False), stage="history"),
            "curve": run.put_file(curve, stage="curve"),
        }
        if pause is None or result.stopped_early:  # finished: nothing left to continue
            store.drop_folder(backup)
        return refs

    return reported(run.run(produce, force), run)


def _training(store: ArtifactStore, scaled: ArtifactRef, params: TrainParams) -> StageRun:
    """The training stage's run, keyed without any halving budget: it names the work folder."""
    import keras

    # the backend is part of the key: a model trained under TensorFlow is not a JAX run's result; so are
    # the devices and hosts (the same steps to float tolerance), named only when more than one (the code
    # hash, over every module this one imports, changes the keys of any change to them anyway)
    fields = {k: v for k, v in dataclasses.asdict(params).items() if not (k in ("devices", "hosts") and v == 1)}
    return StageRun(store, "model", __name__, parents=[scaled], seed=params.seed,
                    params={**fields, "keras_backend": keras.backend.backend()})


def discard_paused(scaled: ArtifactRef, params: TrainParams, artifacts: str) -> None:
    """Remove the backup a paused training left (a halving trial pruned at a rung)."""
    store = ArtifactStore(artifacts)
    store.drop_folder(f".train/{_training(store, scaled, params).cache_key}")


def worker() -> str:
    """Which process trained: host and process id (trials in parallel name their worker)."""
    return f"{socket.gethostname()}:{os.getpid()}"
