"""The model zoo: several registry models, one dataset, the same budget, one comparison."""
from __future__ import annotations

import dataclasses
from typing import Any

from prefect import flow

from flows.steps.pipeline import prepare, score_and_gate, source_for, summary, value
from tasks.core.params import CLASSIFICATION, REGRESSION, TrainParams
from tasks.model.registry import MODELS
from tasks.stages.compare import compare_task
from tasks.stages.train import train_task


def models_for(task: str) -> list[str]:
    return [name for name, entry in MODELS.items() if entry.task == task]


@flow(name="zoo")
def zoo(task: str = "classification", models: list[str] | None = None, train: TrainParams | None = None,
        data: str | None = None, target: str | None = None, artifacts: str = "artifacts",
        force: bool = False) -> dict[str, Any]:
    """Train each model (default: every registry model for the task) and compare them."""
    budget = train or (CLASSIFICATION if task == "classification" else REGRESSION)
    source = source_for(task, data, target)
    data_refs = prepare(source, artifacts, force)
    trained, tests, champion = {}, {}, {}
    for name in models or models_for(task):
        refs = value(train_task(data_refs["scaled"], dataclasses.replace(budget, model=name), artifacts, force))
        scored, tests[name], champion[name] = score_and_gate(refs["model"], data_refs, artifacts, force)
        trained[name] = {**refs, "metrics": scored["metrics"]}
    compared = value(compare_task(trained, task, source.dataset or source.path, artifacts, force))
    return {**summary({**data_refs, **compared}, tests), "champion": champion}
