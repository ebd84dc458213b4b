"""The model zoo: several registry models, one dataset, the same budget, one comparison."""
from __future__ import annotations

import dataclasses
from typing import Any

from prefect import flow

from flows.steps.parameters import described
from flows.steps.pipeline import prepare, score_and_gate, source_for, summary, table_options, value
from tasks.core.params import setup, training
from tasks.model.registry import MODELS
from tasks.stages.compare import compare_task
from tasks.stages.train import train_task


def models_for(task: str) -> list[str]:
    return [name for name, entry in MODELS.items() if entry.task == task]


@flow(name="zoo")
@described(task="classification or regression",
           models="registry model names (empty: every model for the task)")
def zoo(task: str = "classification", models: list[str] | None = None, epochs: int | None = None,
        batch_size: int | None = None, learning_rate: float | None = None, optimizer: str | None = None,
        depth: int | None = None, width: int | None = None, activation: str | None = None,
        initializer: str | None = None, schedule: str | None = None, seed: int | None = None,
        patience: int | None = None, min_delta: float | None = None, steps_per_execution: int | None = None,
        data: str | None = None, target: str | None = None, categorical: list[str] | None = None,
        numeric: list[str] | None = None, missing: str = "refuse", drop_constant: bool = False,
        scale_target: str = "auto", stream: bool | None = None,
        artifacts: str = "artifacts", force: bool = False) -> dict[str, Any]:
    """Train each model on one prepared dataset with the same budget (empty settings: the task's
    course set-up, or the table set-up for ``data``) and compare them."""
    budget = training(setup(task, data), epochs=epochs,
                      batch_size=batch_size, learning_rate=learning_rate, optimizer=optimizer, depth=depth,
                      width=width, activation=activation, initializer=initializer, schedule=schedule, seed=seed,
                      patience=patience, min_delta=min_delta, steps_per_execution=steps_per_execution)
    source = source_for(task, data, target, table_options(categorical, numeric, missing, drop_constant), stream)
    data_refs = prepare(source, artifacts, force, scale_target)
    trained, tests, champion = {}, {}, {}
    for name in models or models_for(task):
        refs = value(train_task(data_refs["scaled"], dataclasses.replace(budget, model=name), artifacts, force))
        scored, tests[name], champion[name] = score_and_gate(refs["model"], data_refs, artifacts, force)
        trained[name] = {**refs, "metrics": scored["metrics"]}
    compared = value(compare_task(trained, task, source.dataset or source.path, artifacts, force))
    return {**summary({**data_refs, **compared}, tests, artifacts), "champion": champion}
