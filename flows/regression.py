"""California-housing regression (or a user's table), the course's 30-1 MLP by default."""
from __future__ import annotations

from typing import Any

from prefect import flow

from flows.pipeline import run_pipeline
from tasks.load import Source
from tasks.train import TrainParams


@flow(name="regression")
def regression(model: str = "mlp30", epochs: int = 20, batch_size: int = 32,
               learning_rate: float | None = None, seed: int = 42, patience: int = 10,
               data: str | None = None, target: str | None = None,
               artifacts: str = "artifacts", force: bool = False) -> dict[str, Any]:
    """Train and test a regressor; ``data``/``target`` swap in a user table for housing."""
    source = Source(path=data, target=target, task="regression") if data \
        else Source(dataset="california-housing", task="regression")
    params = TrainParams(model, epochs, batch_size, learning_rate, seed, patience)
    return run_pipeline(source, params, artifacts, force)
