"""Typed run parameters and the course's defaults: one light module (no heavy imports), so
the CLI can show them in ``--help`` without loading Prefect or Keras."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class TrainParams:
    """How to train: a registry model and the fit settings. ``None`` means the model's default."""

    model: str
    epochs: int
    batch_size: int = 32
    learning_rate: float | None = None
    optimizer: str | None = None
    depth: int | None = None
    width: int | None = None
    activation: str | None = None
    initializer: str | None = None  # hidden layers' kernel initializer, e.g. lecun_normal for selu
    schedule: str | None = None  # "constant" (the course) or "cosine" (decay to ~0 over the epochs)
    seed: int = 42
    patience: int = 5  # EarlyStopping, on the validation loss (the course's monitor)
    min_delta: float = 0.0  # smallest change of the validation loss that counts as progress
    # Batches per compiled call: the very same gradient steps, in fewer Python-to-graph dispatches
    # (chosen by measurement, README "Performance"); the epoch's callbacks see nothing different.
    steps_per_execution: int = 32
    devices: int = 1  # data-parallel on this many devices of one machine; batch_size is the global batch
    hosts: int = 1  # one training spread over this many processes (one device each), on the flow's task runner

    def hparams(self) -> dict[str, object]:
        """The overrides a model builder takes (the rest are fit settings)."""
        return {"learning_rate": self.learning_rate, "optimizer": self.optimizer, "depth": self.depth,
                "width": self.width, "activation": self.activation, "initializer": self.initializer,
                "schedule": self.schedule}


SCHEDULES = ("constant", "cosine")  # learning rate per epoch; see models.learning_rate_at
# Inference (test scores, predictions) needs no small batches: a mean over 4096 rows at a time is
# the same mean (tests/tasks/test_models_train_evaluate.py holds it to 1e-6 against batch 32).
INFERENCE_BATCH = 4096

# The course's fit settings, per dataset (keras-course.txt l. 540-550 and 600-628): Keras's
# default batch 32; EarlyStopping(patience=5) with min_delta 1e-3 on Fashion-MNIST, 1e-2 on housing.
CLASSIFICATION = TrainParams(model="mlp", epochs=10, patience=5, min_delta=1e-3)
REGRESSION = TrainParams(model="mlp30", epochs=100, patience=5, min_delta=1e-2)
DATASETS = {"classification": "fashion-mnist", "regression": "california-housing"}
COURSE = {"classification": CLASSIFICATION, "regression": REGRESSION}  # each task's course set-up
MISSING = ("refuse", "impute")  # a user's table's policy for missing feature values (tasks/stages/table.py)
SCALE_TARGET = ("auto", "yes", "no")  # whether a regressor learns its target standardised (flows/steps/pipeline.py)

# A user's own table: hundreds or thousands of rows where Fashion-MNIST has 60,000, so an epoch is
# a few gradient steps and the course's 10 epochs leave a classifier half-trained. Many more
# epochs, stopped by EarlyStopping on the validation rows (the best epoch is the model kept), with
# more patience, since a small validation split's loss is noisy. The classifier is the course's
# MLP; the regressor the course's Wide & Deep, whose linear path (the inputs joined to the last
# layer) keeps what a linear model finds in a small table, where the 30-unit MLP alone overfits
# (tests/benchmarks/RESULTS.md, "scikit-learn's tables").
TABLE_EPOCHS, TABLE_PATIENCE = 300, 20
TABLE = {task: dataclasses.replace(course, epochs=TABLE_EPOCHS, patience=TABLE_PATIENCE, min_delta=0.0,
                                   model="wide_deep" if task == "regression" else course.model)
         for task, course in COURSE.items()}


def setup(task: str, data: object) -> TrainParams:
    """The training set-up a flow starts from: the course's for its dataset, ``TABLE``'s for a
    user's table (``data`` given)."""
    return TABLE[task] if data else COURSE[task]


def training(course: TrainParams, **given: object) -> TrainParams:
    """The course's set-up with the given settings over it; a setting given as None keeps the course's."""
    return dataclasses.replace(course, **{name: value for name, value in given.items() if value is not None})


# What each training setting means, for the flows' parameters (Prefect shows these in the UI's run form)
TRAINING_HELP = {
    "model": f"registry model name, python -m flows zoo --list (empty: the course's, {CLASSIFICATION.model} for "
             f"Fashion-MNIST and {REGRESSION.model} for housing; for your own table {TABLE['classification'].model}, "
             f"or {TABLE['regression'].model} for regression)",
    "epochs": f"most epochs, EarlyStopping may stop sooner (empty: the course's, {CLASSIFICATION.epochs} for "
              f"Fashion-MNIST and {REGRESSION.epochs} for housing; {TABLE_EPOCHS} for your own table)",
    "batch_size": "examples per gradient step",
    "learning_rate": "optimizer learning rate (empty: the model's)",
    "optimizer": "sgd, adam, nadam or rmsprop (empty: the model's)",
    "depth": "hidden layers of a dense model (empty: the model's)",
    "width": "units per hidden layer (empty: the model's)",
    "activation": "hidden activation, e.g. relu, selu, elu (empty: the model's)",
    "initializer": "hidden layers' kernel initializer, e.g. lecun_normal (empty: the model's)",
    "schedule": "learning rate per epoch: constant (the course) or cosine (empty: the model's)",
    "seed": "random seed for weights and shuffling",
    "patience": f"EarlyStopping: epochs without progress on the validation loss before it stops (empty: the "
                f"course's {CLASSIFICATION.patience}; {TABLE_PATIENCE} for your own table)",
    "min_delta": f"EarlyStopping: the least decrease of the validation loss that counts as progress (empty: the "
                 f"course's, {CLASSIFICATION.min_delta:g} for Fashion-MNIST and {REGRESSION.min_delta:g} for housing; "
                 f"{TABLE['regression'].min_delta:g} for your own table)",
    "steps_per_execution": "batches per compiled training call (the same gradient steps, fewer dispatches)",
    "devices": "train data-parallel on this many devices of the machine (GPUs, or the CPU split into as many); "
               "batch_size is the global batch, shared evenly",
    "hosts": "spread one training over this many processes (one device each), each a task on the flow's task "
             "runner, joined by TensorFlow's MultiWorkerMirroredStrategy; batch_size is the global batch",
}
