"""The pipeline every flow runs: prepare the data once, then fit and score a model on it.

    load -> validate -> split -> validate -> scale -> validate -> train -> (evaluate, report) -> champion

Every evaluated model (the zoo's each, a search's retrained best) gets the report and the gate.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from prefect.runtime import flow_run
from prefect.states import State

from tasks.core.errors import OptionError
from tasks.core.params import DATASETS, SCALE_TARGET, TrainParams
from tasks.model.devices import check_batch
from tasks.serving.champion import champion_task
from tasks.stages.evaluate import evaluate_task
from tasks.stages.load import Source, load_task
from tasks.stages.report import report_task
from tasks.stages.scale_task import scale_task
from tasks.stages.split import split_task
from tasks.stages.streamed import streams
from tasks.stages.table import TableOptions
from tasks.stages.train import train_task
from tasks.stages.validate_tasks import validate_raw_task, validate_scaled_task, validate_split_task
from tasks.store.artifacts import ArtifactRef, ArtifactStore


def source_for(task: str, data: str | None, target: str | None, table: TableOptions | None = None,
               stream: bool | None = None) -> Source:
    """A user table when ``data`` is given (read as ``table`` says), else the course's dataset for the task;
    streamed a row group at a time as ``stream`` says, or, left empty, when the table is large
    (tasks/stages/streamed.py)."""
    table = table or TableOptions()
    if not data and table != TableOptions():
        raise OptionError("categorical, numeric, missing and drop_constant are for your own table (data)")
    source = Source(path=data, target=target, task=task, table=table) if data else \
        Source(dataset=DATASETS[task], task=task)
    return dataclasses.replace(source, stream=streams(source, stream))


def table_options(categorical: list[str] | None = None, numeric: list[str] | None = None,
                  missing: str = "refuse", drop_constant: bool = False) -> TableOptions:
    """The flows' table parameters as the load stage takes them."""
    return TableOptions(tuple(categorical or ()), tuple(numeric or ()), missing, bool(drop_constant))


def value(result: Any) -> Any:
    """What a stage task returned: a task whose outputs came from the cache returns Prefect's
    "Cached" state (so the UI shows it as cached), which holds the same value."""
    return result.result() if isinstance(result, State) else result


def scales_target(source: Source, scale_target: str) -> bool:
    """Whether the regressor learns its target standardised: ``auto`` for a user's table (its
    target may be in any units), not for the course's housing (already in units of $100,000)."""
    if scale_target not in SCALE_TARGET:
        raise OptionError(f"scale_target {scale_target!r}: use one of {', '.join(SCALE_TARGET)}")
    if scale_target == "yes" and source.task != "regression":
        raise OptionError("--scale-target yes: only a regression target is scaled (a classifier's are labels)")
    return source.task == "regression" and (scale_target == "yes" or (scale_target == "auto" and bool(source.path)))


def prepare(source: Source, artifacts: str, force: bool = False, scale_target: str = "auto", workers: int = 1
            ) -> dict[str, ArtifactRef]:
    """The data stages; a streamed table's scans in ``workers`` parts on the flow's task runner."""
    if workers < 1:
        raise OptionError(f"workers {workers}: must be at least 1")
    raw = value(validate_raw_task(load_task(source, artifacts, force), artifacts, force, workers))
    index = value(validate_split_task(split_task(raw, artifacts, force), raw, artifacts, force, workers))
    scaled = value(scale_task(raw, index, artifacts, force, scales_target(source, scale_target), workers))
    return {"raw": raw, "split": index, "scaler": scaled["scaler"],
            **({"vocabulary": scaled["vocabulary"]} if "vocabulary" in scaled else {}),
            "scaled": value(validate_scaled_task(scaled["scaled"], artifacts, force, workers))}


def score_and_gate(model: ArtifactRef, data: dict[str, ArtifactRef], artifacts: str, force: bool = False,
                   submit: bool = False) -> tuple[dict[str, ArtifactRef], dict[str, float], bool]:
    """A trained model's test score (its one look at the test rows), its reports, then the
    champion gate: the metrics and report refs, the test scores, whether it was promoted.
    ``submit``: the scoring and the report run on the flow's task runner, side by side where it
    has two workers (a search's worker processes: the flow's own process never loads Keras)."""
    scoring = (model, data["scaled"], artifacts, force)
    reporting = (model, data["scaled"], data["scaler"], artifacts, force)
    if submit:
        scored, reported = evaluate_task.submit(*scoring), report_task.submit(*reporting)
        (metrics, test), report = value(scored.result()), value(reported.result())
    else:
        (metrics, test), report = value(evaluate_task(*scoring)), value(report_task(*reporting))
    champion = value(champion_task(model, data["scaler"], data["scaled"], test, artifacts))
    return {"metrics": metrics, **report}, test, champion


def run_pipeline(source: Source, params: TrainParams, artifacts: str, force: bool = False,
                 scale_target: str = "auto", workers: int = 1) -> dict[str, Any]:
    check_batch(params.devices, params.batch_size, params.hosts)  # before any stage: as the CLI checks
    data = prepare(source, artifacts, force, scale_target, workers)
    trained = value(train_task(data["scaled"], params, artifacts, force))
    scored, test, champion = score_and_gate(trained["model"], data, artifacts, force)
    return {**summary({**data, **trained, **scored}, test, artifacts), "champion": champion}


def summary(produced: dict[str, ArtifactRef], test: dict[str, Any], artifacts: str) -> dict[str, Any]:
    """What the CLI prints with --json: flow, run id, test metrics, where each artifact is (its
    path, or its URL for a store on object storage)."""
    store = ArtifactStore(artifacts)
    return {"flow": flow_run.flow_name, "run_id": str(flow_run.id), "test": test,
            "artifacts": {stage: store.url(ref.path) for stage, ref in produced.items()}}
