"""One process of a training spread over several (``--hosts N``): ``python -m tasks.stages.host_worker CONFIG``.

The processes are joined by TensorFlow's ``MultiWorkerMirroredStrategy`` (its cluster in
``TF_CONFIG``, the first process its chief): each holds a replica of the model, each step every
process computes the gradient of its share of the global batch, and the strategy sums them
across processes (its collective all-reduce), so that every replica takes the same step. Keras's
``fit`` cannot run under this strategy in Keras 3 (keras-team/keras#20585), so the epochs are a
loop of ``strategy.run`` steps, the loss summed over a share's rows and divided by the global
batch's (exact however unevenly the last batch splits).

Every process draws the same seeded order of the train rows each epoch and takes every N-th row of
each global batch. After each epoch the chief writes the epoch's row of ``epochs.csv``, the best
model so far (``best.keras``, on the validation loss, as ModelCheckpoint does) and a backup of
the weights and the optimizer's state with the epoch (``hosts-backup.npz``): a training started
again in the same folder resumes after the last epoch backed up, on every process.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

LOSE_ENV = "KERAS_FLOWS_LOSE_HOST"  # fault injection, "RANK:EPOCH": that process kills itself after the epoch
DIVERGED = 3  # exit code of a training whose loss became NaN or infinite
BACKUP = "hosts-backup.npz"  # the weights, the optimizer's state and the epoch, after each epoch
COLLECTIVE_TIMEOUT_SECONDS = 300


def _take(structure, rows: np.ndarray):
    return {k: v[rows] for k, v in structure.items()} if isinstance(structure, dict) else structure[rows]


def _save(path: Path, write) -> None:
    """Write a file atomically: a temporary name in the same folder, then a rename."""
    tmp = path.with_name(f".tmp-{path.stem}{path.suffix}")
    write(tmp)
    os.replace(tmp, path)


class _Chief:
    """What the first process writes after each epoch: the best model, the epoch log and the backup.
    The backup is one file holding everything a resume needs (the log's rows too), so that a copy of
    the folder taken mid-epoch (the bucket's) resumes consistently."""

    def __init__(self, workdir: Path, plain):
        self.workdir, self.plain = workdir, plain

    def epoch_done(self, net, epoch: int, improved: bool, state: dict) -> None:
        if improved:  # as ModelCheckpoint(save_best_only): a model any process can load, not a replica
            self.plain.set_weights(net.get_weights())
            _save(self.workdir / "best.keras", self.plain.save)
        write_log(self.workdir, state["history"])
        arrays = {f"v{i}": np.asarray(v) for i, v in enumerate(net.variables)}  # dropout's seed state too
        arrays.update({f"o{i}": np.asarray(v) for i, v in enumerate(net.optimizer.variables)})
        _save(self.workdir / BACKUP, lambda path: np.savez(path, epoch=epoch + 1, **state, **arrays))
        _, loss, val_loss = state["history"][-1]
        print(json.dumps({"epoch": epoch + 1, "loss": loss, "val_loss": val_loss}), flush=True)


def write_log(workdir: Path, history: list) -> None:
    """``epochs.csv`` as CSVLogger writes it (epoch from 0), from the rows so far."""
    rows = "".join(f"{int(e)},{loss!r},{val!r}\n" for e, loss, val in history)
    _save(workdir / "epochs.csv", lambda path: path.write_text("epoch,loss,val_loss\n" + rows))


def _resume(net, workdir: Path) -> dict:
    """The state after the last epoch backed up (variables, optimizer, epoch, the watch's, the log's
    rows), if any; the log rewritten to match it."""
    if not (workdir / BACKUP).exists():
        return {"epoch": 0, "best": np.inf, "saved": np.inf, "waited": 0, "stopped": False, "history": []}
    held = np.load(workdir / BACKUP)
    for i, variable in enumerate(net.variables):
        variable.assign(held[f"v{i}"])
    for i, variable in enumerate(net.optimizer.variables):
        variable.assign(held[f"o{i}"])
    history = [tuple(map(float, row)) for row in held["history"]]
    write_log(workdir, history)
    return {"epoch": int(held["epoch"]), "best": float(held["best"]), "saved": float(held["saved"]),
            "waited": int(held["waited"]), "stopped": bool(held["stopped"]), "history": history}


def _lose_after(workdir: Path, epoch: int) -> None:
    """Fault injection: die as a lost host does, once the chief has backed up ``epoch``."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if int(np.load(workdir / BACKUP)["epoch"]) >= epoch:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    os.kill(os.getpid(), signal.SIGKILL)


def main(config_path: str) -> int:
    config = json.loads(Path(config_path).read_text())
    os.environ["TF_CONFIG"] = json.dumps(config["tf_config"])
    import keras
    import tensorflow as tf

    from tasks.model import registry as models
    from tasks.model.target_units import training_arrays
    from tasks.store.dataset import read_frame

    # a collective step waiting longer than this for a peer fails (a lost host on another machine)
    timeout = tf.distribute.experimental.CommunicationOptions(timeout_seconds=COLLECTIVE_TIMEOUT_SECONDS)
    strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=timeout)
    rank, hosts, workdir = config["rank"], config["hosts"], Path(config["workdir"])
    model, batch, epochs, seed = config["model"], config["batch_size"], config["epochs"], config["seed"]
    frame = read_frame(config["scaled"])
    x_train, y_train = training_arrays(frame.part("train"), model, frame.spec.target_scaling)
    x_valid, y_valid = training_arrays(frame.part("valid"), model, frame.spec.target_scaling)
    shapes = models.input_shapes(model, frame.spec.features, frame.spec.feature_shape)
    outputs, hp = models.n_outputs(frame.spec, frame.y), models.hyperparameters(model, config["hparams"])
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        net = models.build(model, shapes, outputs, config["hparams"], 1, seed)
        net.optimizer.build(net.trainable_variables)
    chief = _Chief(workdir, models.build(model, shapes, outputs, config["hparams"], 1, seed)) if rank == 0 else None
    per_row = keras.losses.get(net.loss)

    @tf.function
    def step(x, y, rows):
        def replica(x, y):
            with tf.GradientTape() as tape:
                losses = tf.reshape(per_row(y, net(x, training=True)), [-1])
                loss = tf.reduce_sum(losses) / tf.cast(rows, losses.dtype)  # over the global batch's rows
            grads = tape.gradient(loss, net.trainable_variables)
            net.optimizer.apply_gradients(zip(grads, net.trainable_variables))  # summed across processes
            return tf.reduce_sum(losses)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(replica, args=(x, y)), axis=None)

    @tf.function
    def scored(x, y):
        def replica(x, y):
            return tf.reduce_sum(tf.reshape(per_row(y, net(x, training=False)), [-1]))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(replica, args=(x, y)), axis=None)

    state = _resume(net, workdir)
    first = state.pop("epoch")
    print(json.dumps({"resumed_at": first + 1}), flush=True)
    valid_mine = np.arange(len(y_valid))[rank::hosts]
    for epoch in range(first, epochs if not state["stopped"] else first):  # stopped early: nothing left
        if models.schedule_of(hp) != "constant":
            net.optimizer.learning_rate.assign(models.learning_rate_at(hp, epoch, epochs))
        order, total = np.random.default_rng([seed, epoch]).permutation(len(y_train)), 0.0
        for start in range(0, len(order), batch):
            rows = order[start:start + batch]
            mine = rows[rank::hosts]  # every process takes every N-th row of the same global batch
            total += float(step(_take(x_train, mine), y_train[mine], len(rows)))
        loss = total / len(order)
        val_loss = float(scored(_take(x_valid, valid_mine), y_valid[valid_mine])) / len(y_valid)
        if not (np.isfinite(loss) and np.isfinite(val_loss)):
            return DIVERGED
        improved, progressed = val_loss < state["saved"], val_loss < state["best"] - config["min_delta"]
        state["saved"] = min(state["saved"], val_loss)  # ModelCheckpoint's best; EarlyStopping's below
        state["best"], state["waited"] = (val_loss, 0) if progressed else (state["best"], state["waited"] + 1)
        state["stopped"] = not progressed and state["waited"] >= config["patience"]  # as EarlyStopping
        state["history"].append((epoch, loss, val_loss))
        if chief is not None:
            chief.epoch_done(net, epoch, improved, state)
        if os.environ.get(LOSE_ENV) == f"{rank}:{epoch + 1}" and first == 0:  # on a first attempt only
            _lose_after(workdir, epoch + 1)
        if state["stopped"]:
            break
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
