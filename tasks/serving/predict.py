"""Scoring new data with a stored model, after the checks of ``tasks/serving/drift.py``.

The champion (or a model named by its hash) is resolved to its files, the new rows are checked
for skew and drift, scaled with the stored train-only scaler and scored. A table that fails
writes nothing. The predictions artifact (input row, prediction, class probabilities) has
lineage to the model, the scaler and the input file's hash.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core.params import INFERENCE_BATCH
from tasks.core.raw_places import cache_dir
from tasks.model import files as model_files
from tasks.serving.drift import NewRows, check_new_data
from tasks.serving.predict_stream import check_streamed, streamed_predictions, streams_new
from tasks.serving.resolve import Trained, trained
from tasks.stages.categories import Vocabulary
from tasks.stages.scale import StandardScaler
from tasks.store.artifacts import ArtifactStore
from tasks.store.dataset import Frame, read_parquet
from tasks.store.lineage import ArtifactRef, RawFile
from tasks.store.remote import downloaded, is_url


def model_rows(found: Trained, new: NewRows) -> np.ndarray:
    """New rows as the model takes them: imputed and scaled as training did, then the categorical
    columns one-hot on training's vocabulary."""
    X = StandardScaler.from_arrow(read_parquet(found.scaler.path)).transform(new.X)
    if found.vocabulary is None:
        return X
    one_hot, _ = Vocabulary.from_arrow(read_parquet(found.vocabulary.path)).encode(new.text)
    return np.concatenate([X, one_hot], axis=1)


def predictions(found: Trained, new: NewRows, model=None, first: int = 0) -> pa.Table:
    """Scale as training did, score with the model (loaded here unless given): row (counted from
    ``first``), prediction (and class probabilities; the label's name too, for labels given as text)."""
    from tasks.model.registry import main_output, model_inputs

    rows = np.arange(first, first + len(new.X), dtype=np.int64)
    frame = Frame(found.inputs, model_rows(found, new), np.zeros(len(rows)), rows)
    model = model or model_files.load(found.model.path)
    out = main_output(model.predict(model_inputs(frame, found.model_name), batch_size=INFERENCE_BATCH, verbose=0),
                      found.model_name)
    columns = {"row": rows}
    if found.spec.task == "classification":
        columns["prediction"] = out.argmax(axis=1).astype(np.int64)
        if found.spec.class_names:
            columns["label"] = np.asarray(found.spec.class_names, dtype=object)[columns["prediction"]]
        columns.update({f"probability_{k}": out[:, k].astype(np.float32) for k in range(out.shape[1])})
    else:
        columns["prediction"] = out.reshape(len(rows), -1)[:, 0].astype(np.float64)
    return pa.table(columns)


def raw_file(identity: str) -> RawFile:
    name, _, digest = identity.rpartition(":")
    return RawFile(name, digest)


# ---- the Prefect task ------------------------------------------------------------------------
@task(name="predict", cache_policy=NO_CACHE)
def predict_task(data: str, artifacts: str, model: str = "champion", dataset: str | None = None,
                 strict: bool = False, stream: bool | None = None) -> tuple[ArtifactRef, dict]:
    """Check the new table against training, then write its predictions (nothing when it fails);
    a table larger than memory a batch of rows at a time (``predict_stream.py``)."""
    from tasks.store.stage import StageRun, logger, reported

    store = ArtifactStore(artifacts)
    found = trained(store, model, dataset)
    path = downloaded(data, cache_dir() / "tables") if is_url(data) else Path(data)
    streamed = streams_new(path, found, stream)
    check = check_streamed if streamed else check_new_data
    new = check(path, found, strict, logger().warning, logger().info)  # before the store is touched
    fitted = [found.model, found.scaler, *([found.vocabulary] if found.vocabulary else [])]
    run = StageRun(store, "predictions", __name__, parents=[*fitted, new.identity],
                   params={"model": found.model_name, "strict": strict})

    def produce(run: StageRun) -> dict[str, ArtifactRef]:
        run.parents = [*fitted, raw_file(new.identity)]
        if streamed:
            return {"predictions": run.put_batches(streamed_predictions(found, path, predictions), unseen=new.unseen)}
        return {"predictions": run.put_table(predictions(found, new), unseen=new.unseen)}

    ref = run.run(produce)["predictions"]
    logger().info("predictions of model %s on %s: %s", found.model.sha256[:12], path.name, ref.path)
    return reported((ref, {"model": store.url(found.model.path), "rows": ref.rows, "streamed": streamed}), run)
