"""California-housing regression (or a user's table), the course's 30-1 MLP by default."""
from __future__ import annotations

from typing import Any

from prefect import flow

from flows.steps.parameters import described
from flows.steps.pipeline import run_pipeline, source_for
from tasks.core.params import REGRESSION, TrainParams


@flow(name="regression")
@described()
def regression(model: str = REGRESSION.model, epochs: int = REGRESSION.epochs,
               batch_size: int = REGRESSION.batch_size, learning_rate: float | None = None,
               optimizer: str | None = None, depth: int | None = None, width: int | None = None,
               activation: str | None = None, initializer: str | None = None, schedule: str | None = None,
               seed: int = REGRESSION.seed, patience: int = REGRESSION.patience,
               min_delta: float = REGRESSION.min_delta, steps_per_execution: int = REGRESSION.steps_per_execution,
               data: str | None = None, target: str | None = None, artifacts: str = "artifacts",
               force: bool = False) -> dict[str, Any]:
    """Train and test a regressor on California housing (or ``data``), the course's set-up by default."""
    train = TrainParams(model, epochs, batch_size, learning_rate, optimizer, depth, width, activation, initializer,
                        schedule, seed, patience, min_delta, steps_per_execution)
    return run_pipeline(source_for("regression", data, target), train, artifacts, force)
