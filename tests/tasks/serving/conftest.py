"""Trained stores for the serving tests: the real stage functions run on slices of the real data."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flows.steps.pipeline import value
from tasks.core.params import TrainParams
from tasks.serving.champion import champion_task
from tasks.stages.evaluate import evaluate_task
from tasks.stages.load import Source, load_task
from tasks.stages.scale_task import scale_task
from tasks.stages.split import split_task
from tasks.stages.table import TableOptions
from tasks.stages.train import train_task
from tasks.store.artifacts import ArtifactStore
from tasks.store.lineage import ArtifactRef

HOUSING_TARGET = "MedHouseVal"


@dataclass
class TrainedStore:
    """An artifact store after the stages ran: its data artifacts and, per model, its refs and test scores."""

    store: ArtifactStore
    data: dict[str, ArtifactRef]  # raw, split, scaled, scaler
    models: dict[str, ArtifactRef] = field(default_factory=dict)  # registry name -> model artifact
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # registry name -> test scores
    champion: dict[str, bool] = field(default_factory=dict)  # registry name -> champion after its gate


@pytest.fixture(scope="session")
def housing_rows(housing) -> pd.DataFrame:
    """4,000 real housing rows, features and target, in a random order (the data file is ordered
    by region, so a plain slice would drift from the next one): 3,000 to train on, 1,000 held out."""
    rows = np.random.default_rng(0).permutation(len(housing))[:4_000]
    df = pd.DataFrame(housing.X[rows], columns=list(housing.spec.features))
    df[HOUSING_TARGET] = housing.y[rows]
    return df


@pytest.fixture(scope="session")
def housing_held_out(housing_rows) -> pd.DataFrame:
    """The 1,000 housing rows no store of these tests was trained on, target included."""
    return housing_rows.iloc[3_000:].reset_index(drop=True)


@pytest.fixture(scope="session")
def housing_table(housing_rows, tmp_path_factory) -> Path:
    """The 3,000 training rows as a user CSV (no split column: the split stage draws one)."""
    path = tmp_path_factory.mktemp("housing-table") / "housing-train.csv"
    housing_rows.iloc[:3_000].to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def build_store() -> Callable[..., TrainedStore]:
    """A function that runs load, split, scale, then train, evaluate and (with ``gate``) the
    champion gate for each model, as the flows do but without a Prefect flow around them (a stage
    whose outputs came from the store's cache returns Prefect's "Cached" state: unwrapped as the flows do)."""

    def build(folder: Path, table: Path, target: str, task: str, models: list[TrainParams],
              gate: bool = True, options: TableOptions | None = None) -> TrainedStore:
        artifacts = str(folder)
        source = Source(path=str(table), target=target, task=task, table=options or TableOptions())
        raw = value(load_task.fn(source, artifacts))
        split = value(split_task.fn(raw, artifacts))
        scaled = value(scale_task.fn(raw, split, artifacts))
        built = TrainedStore(ArtifactStore(folder), {"raw": raw, "split": split, **scaled})
        for params in models:
            model = value(train_task.fn(scaled["scaled"], params, artifacts))["model"]
            _, scores = value(evaluate_task.fn(model, scaled["scaled"], artifacts))
            built.models[params.model], built.scores[params.model] = model, scores
            if gate:
                built.champion[params.model] = value(champion_task.fn(model, scaled["scaler"], scaled["scaled"],
                                                                      scores, artifacts))
        return built

    return build
