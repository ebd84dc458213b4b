"""The one pipeline both flows run: load, validate, split, validate, scale, validate, train, evaluate."""
from __future__ import annotations

from typing import Any

from prefect.runtime import flow_run

from tasks.evaluate import evaluate_task
from tasks.load import Source, load_task
from tasks.scale import scale_task
from tasks.split import split_task
from tasks.train import TrainParams, train_task
from tasks.validate import validate_raw_task, validate_scaled_task, validate_split_task


def run_pipeline(source: Source, params: TrainParams, artifacts: str, force: bool = False) -> dict[str, Any]:
    raw = validate_raw_task(load_task(source, artifacts, force), artifacts, force)
    index = validate_split_task(split_task(raw, artifacts, force), raw, artifacts, force)
    scaled = scale_task(raw, index, artifacts, force)
    scaled_data = validate_scaled_task(scaled["scaled"], artifacts, force)
    trained = train_task(scaled_data, params, artifacts, force)
    metrics, test = evaluate_task(trained["model"], scaled_data, artifacts, force)
    produced = {"raw": raw, "split": index, **scaled, **trained, "metrics": metrics}
    return {"flow": flow_run.flow_name, "run_id": str(flow_run.id), "test": test,
            "artifacts": {stage: ref.path for stage, ref in produced.items()}}
