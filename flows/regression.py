"""California-housing regression (or a user's table), the course's 30-1 MLP by default."""
from __future__ import annotations

from typing import Any

from prefect import flow

from flows.steps.parameters import described
from flows.steps.pipeline import run_pipeline, source_for, table_options
from tasks.core.params import REGRESSION, setup, training


@flow(name="regression")
@described()
def regression(model: str | None = None, epochs: int | None = None,
               batch_size: int = REGRESSION.batch_size, learning_rate: float | None = None,
               optimizer: str | None = None, depth: int | None = None, width: int | None = None,
               activation: str | None = None, initializer: str | None = None, schedule: str | None = None,
               seed: int = REGRESSION.seed, patience: int | None = None, min_delta: float | None = None,
               steps_per_execution: int = REGRESSION.steps_per_execution, devices: int = 1, hosts: int = 1,
               data: str | None = None, target: str | None = None, categorical: list[str] | None = None,
               numeric: list[str] | None = None, missing: str = "refuse", drop_constant: bool = False,
               scale_target: str = "auto", stream: bool | None = None, workers: int = 1,
               artifacts: str = "artifacts", force: bool = False) -> dict[str, Any]:
    """Train and test a regressor on California housing (or ``data``): the course's
    set-up, or the table set-up for ``data``."""
    train = training(setup("regression", data), model=model, epochs=epochs, batch_size=batch_size,
                     learning_rate=learning_rate, optimizer=optimizer, depth=depth, width=width, activation=activation,
                     initializer=initializer, schedule=schedule, seed=seed, patience=patience, min_delta=min_delta,
                     steps_per_execution=steps_per_execution, devices=devices, hosts=hosts)
    table = table_options(categorical, numeric, missing, drop_constant)
    return run_pipeline(source_for("regression", data, target, table, stream), train, artifacts, force, scale_target,
                        workers)
