"""Evaluation: the chosen model, loaded back from its artifact, scored once on test."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core.params import INFERENCE_BATCH
from tasks.model import files as model_files
from tasks.model.registry import model_inputs, model_targets
from tasks.model.streamed_batches import ScaledFile, split_batches
from tasks.store.artifacts import ArtifactRef, ArtifactStore
from tasks.store.dataset import Frame, is_streamed, read_frame, read_parquet, spec_of
from tasks.store.lineage import Evaluation
from tasks.store.publish import publish_table
from tasks.store.sources import read_schema
from tasks.store.stage import StageRun, logger, reported


def evaluate(model_path: Path, test: Frame, model_name: str) -> dict[str, float]:
    """Keras metrics on the test split, keyed by Keras's names (``loss``, ``accuracy``...)."""
    if test.split is not None and set(np.unique(test.split)) != {"test"}:
        raise ValueError("evaluate() takes the test split only")
    model = model_files.load(model_path)
    scores = model.evaluate(model_inputs(test, model_name), model_targets(test, model_name),
                            batch_size=INFERENCE_BATCH, verbose=0, return_dict=True)
    return {name: float(value) for name, value in scores.items()}


def evaluate_streamed(model_path: Path, scaled: ScaledFile, model_name: str) -> tuple[dict[str, float], int]:
    """``evaluate`` on the test rows of a scaled artifact left on disk, a row group at a time
    (Keras averages each metric over the batches by their rows, as over one array); and the rows."""
    batches = split_batches(scaled, "test", INFERENCE_BATCH,
                            lambda part: (model_inputs(part, model_name), model_targets(part, model_name)))
    scores = model_files.load(model_path).evaluate(batches, verbose=0, return_dict=True)
    return {name: float(value) for name, value in scores.items()}, batches.rows


def read_metrics(ref: ArtifactRef) -> dict[str, float]:
    table = read_parquet(ref.path).to_pydict()
    return dict(zip(table["metric"], table["value"]))


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate_task(model: ArtifactRef, scaled: ArtifactRef, artifacts: str, force: bool = False
                  ) -> tuple[ArtifactRef, dict[str, float]]:
    """Score the model on the test rows once; publish the metrics as a Prefect table."""
    def produce(run: StageRun) -> dict[str, ArtifactRef]:
        name = ArtifactStore.record(model).model_name
        if is_streamed(scaled):
            scores, rows = evaluate_streamed(Path(model.path), ScaledFile(scaled.path), name)
        else:
            test = read_frame(scaled.path, filters=[("split", "=", "test")])
            scores, rows = evaluate(Path(model.path), test, name), len(test)
        table = pa.table({"metric": list(scores), "value": list(scores.values())})
        return {"metrics": run.put_table(table, evaluation=Evaluation(test=scores, test_rows=rows))}

    run = StageRun(ArtifactStore(artifacts), "metrics", __name__, parents=[model, scaled])
    ref = run.run(produce, force)["metrics"]
    scores = read_metrics(ref)
    logger().info("test metrics: %s", ", ".join(f"{k}={v:.4f}" for k, v in scores.items()))
    publish_table(f"{spec_of(read_schema(scaled.path)).name}-test-metrics",
                  [{"metric": k, "value": round(v, 6)} for k, v in scores.items()],
                  f"Test metrics of model {model.sha256[:12]} (metrics artifact {ref.path})")
    return reported((ref, scores), run)
