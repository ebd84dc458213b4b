"""Fashion-MNIST classification (or a user's labelled table), the course's MLP by default."""
from __future__ import annotations

from typing import Any

from prefect import flow

from flows.steps.parameters import described
from flows.steps.pipeline import run_pipeline, source_for, table_options
from tasks.core.params import CLASSIFICATION, setup, training


@flow(name="classification")
@described()
def classification(model: str | None = None, epochs: int | None = None,
                   batch_size: int = CLASSIFICATION.batch_size, learning_rate: float | None = None,
                   optimizer: str | None = None, depth: int | None = None, width: int | None = None,
                   activation: str | None = None, initializer: str | None = None, schedule: str | None = None,
                   seed: int = CLASSIFICATION.seed, patience: int | None = None,
                   min_delta: float | None = None, steps_per_execution: int = CLASSIFICATION.steps_per_execution,
                   devices: int = 1, hosts: int = 1, data: str | None = None, target: str | None = None,
                   categorical: list[str] | None = None, numeric: list[str] | None = None,
                   missing: str = "refuse", drop_constant: bool = False,
                   stream: bool | None = None, workers: int = 1, artifacts: str = "artifacts",
                   force: bool = False) -> dict[str, Any]:
    """Train and test a classifier on Fashion-MNIST (or ``data``): the course's
    set-up, or the table set-up for ``data``."""
    train = training(setup("classification", data), model=model, epochs=epochs, batch_size=batch_size,
                     learning_rate=learning_rate, optimizer=optimizer, depth=depth, width=width, activation=activation,
                     initializer=initializer, schedule=schedule, seed=seed, patience=patience, min_delta=min_delta,
                     steps_per_execution=steps_per_execution, devices=devices, hosts=hosts)
    table = table_options(categorical, numeric, missing, drop_constant)
    return run_pipeline(source_for("classification", data, target, table, stream), train, artifacts, force,
                        workers=workers)
