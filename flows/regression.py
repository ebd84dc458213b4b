"""California-housing regression (or a user's table), the course's 30-1 MLP by default."""
from __future__ import annotations

from typing import Any

from prefect import flow

from flows.steps.pipeline import run_pipeline, source_for
from tasks.core.params import REGRESSION, TrainParams


@flow(name="regression")
def regression(train: TrainParams = REGRESSION, data: str | None = None, target: str | None = None,
               artifacts: str = "artifacts", force: bool = False) -> dict[str, Any]:
    """Train and test a regressor; ``data``/``target`` swap in a user table for housing."""
    return run_pipeline(source_for("regression", data, target), train, artifacts, force)
