"""Fashion-MNIST classification (or a user's labelled table), the course's MLP by default."""
from __future__ import annotations

from typing import Any

from prefect import flow

from flows.steps.pipeline import run_pipeline, source_for
from tasks.core.params import CLASSIFICATION, TrainParams


@flow(name="classification")
def classification(train: TrainParams = CLASSIFICATION, data: str | None = None, target: str | None = None,
                   artifacts: str = "artifacts", force: bool = False) -> dict[str, Any]:
    """Train and test a classifier; ``data``/``target`` swap in a user table for Fashion-MNIST."""
    return run_pipeline(source_for("classification", data, target), train, artifacts, force)
