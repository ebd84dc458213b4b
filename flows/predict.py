"""Score new data with the champion (or a named model): checks for skew and drift first."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from flows.steps.parameters import described
from flows.steps.pipeline import value
from tasks.serving.predict import predict_task
from tasks.store.artifacts import ArtifactStore


@flow(name="predict")
@described(data="new rows: a CSV or Parquet table with the training features (or idx images)",
           model="champion, or a model artifact's sha256 prefix",
           dataset="whose champion, when the store has several (empty: its only one)",
           out="also write the predictions here (.parquet or .csv)", strict="fail on drift instead of warning",
           stream="check and score the table a batch of rows at a time, never whole in memory: true, false, or "
                  "empty (when its values would take over 1 GiB)")
def predict(data: str, model: str = "champion", dataset: str | None = None, out: str | None = None,
            strict: bool = False, stream: bool | None = None, artifacts: str = "artifacts") -> dict[str, Any]:
    """Score new rows with the champion (or a named model), after skew and drift checks."""
    ref, facts = value(predict_task(data, artifacts, model, dataset, strict, stream))
    if out:
        ref, target = ArtifactStore(artifacts).here(ref, whole=True), Path(out)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.suffix.lower() == ".csv" and facts["streamed"]:  # a batch at a time, as scored
            import pyarrow.csv as csv
            import pyarrow.parquet as pq

            predictions = pq.ParquetFile(ref.path)
            quoting = csv.WriteOptions(quoting_header="none")  # column names bare, as pandas writes them
            with csv.CSVWriter(target, predictions.schema_arrow, write_options=quoting) as writer:
                for batch in predictions.iter_batches():
                    writer.write_batch(batch)
        elif target.suffix.lower() == ".csv":
            import pandas as pd

            pd.read_parquet(ref.path).to_csv(target, index=False)
        else:
            shutil.copyfile(ref.path, target)
    where = ArtifactStore(artifacts).url(ref.path)
    return {"flow": flow_run.flow_name, "run_id": str(flow_run.id), "test": {}, "model": facts["model"],
            "rows": facts["rows"], "artifacts": {"predictions": where, **({"out": out} if out else {})}}
