"""Typed run parameters and the course's defaults: one light module (no heavy imports), so
the CLI can show them in ``--help`` without loading Prefect or Keras."""
from __future__ import annotations

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
    schedule: str | None = None  # "constant" (the course) or "cosine" (decay to ~0 over the epochs)
    seed: int = 42
    patience: int = 10

    def hparams(self) -> dict[str, object]:
        """The overrides a model builder takes (the rest are fit settings)."""
        return {"learning_rate": self.learning_rate, "optimizer": self.optimizer, "depth": self.depth,
                "width": self.width, "activation": self.activation, "schedule": self.schedule}


SCHEDULES = ("constant", "cosine")  # learning rate per epoch; see models.learning_rate_at

# the course's set-ups (the regression learning rate differs: see README)
CLASSIFICATION = TrainParams(model="mlp", epochs=10)
REGRESSION = TrainParams(model="mlp30", epochs=20)
DATASETS = {"classification": "fashion-mnist", "regression": "california-housing"}
