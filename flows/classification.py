"""Fashion-MNIST classification (or a user's labelled table), the course's MLP by default."""
from __future__ import annotations

from typing import Any

from prefect import flow

from flows.pipeline import run_pipeline
from tasks.load import Source
from tasks.train import TrainParams


@flow(name="classification")
def classification(model: str = "mlp", epochs: int = 10, batch_size: int = 32,
                   learning_rate: float | None = None, seed: int = 42, patience: int = 10,
                   data: str | None = None, target: str | None = None,
                   artifacts: str = "artifacts", force: bool = False) -> dict[str, Any]:
    """Train and test a classifier; ``data``/``target`` swap in a user table for Fashion-MNIST."""
    source = Source(path=data, target=target, task="classification") if data \
        else Source(dataset="fashion-mnist", task="classification")
    params = TrainParams(model, epochs, batch_size, learning_rate, seed, patience)
    return run_pipeline(source, params, artifacts, force)
