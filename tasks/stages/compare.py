"""Comparison of trained models on one dataset: a table and one plot of validation curves."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.stages.evaluate import read_metrics
from tasks.stages.plots import plot_lines
from tasks.store.artifacts import ArtifactRef, ArtifactStore
from tasks.store.dataset import read_parquet
from tasks.store.publish import publish_table
from tasks.store.stage import StageRun, logger, reported


def compare(rows: list[dict[str, Any]], histories: dict[str, pd.DataFrame], task: str
            ) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """One row per model; the validation curve a reader compares them by (accuracy or loss)."""
    curve = "val_accuracy" if task == "classification" else "val_loss"
    table = pd.DataFrame(rows)
    table["best_" + curve] = [getattr(histories[m][curve], "max" if task == "classification" else "min")()
                              for m in table["model"]]
    order = ("test_accuracy" if task == "classification" else "test_loss")
    table = table.sort_values(order, ascending=task != "classification").reset_index(drop=True)
    return table, {m: histories[m].set_index("epoch")[curve] for m in table["model"]}


@task(name="compare", cache_policy=NO_CACHE)
def compare_task(trained: dict[str, dict[str, ArtifactRef]], task: str, dataset: str, artifacts: str,
                 force: bool = False) -> dict[str, ArtifactRef]:
    """Write the zoo's comparison table and validation-curve plot; publish the table in Prefect."""
    store = ArtifactStore(artifacts)

    def produce(run: StageRun) -> dict[str, ArtifactRef]:
        rows, histories = [], {}
        for model, refs in trained.items():
            facts = store.record(refs["model"]).training
            test = read_metrics(refs["metrics"])
            rows.append({"model": model, "weights": facts.weights, "epochs_run": facts.epochs_run,
                         **{f"test_{k}": v for k, v in test.items() if k in ("loss", "accuracy")},
                         "train_seconds": round(facts.train_seconds, 1)})
            histories[model] = read_parquet(refs["history"].path).to_pandas()
        table, curves = compare(rows, histories, task)
        with tempfile.TemporaryDirectory(dir=store.root) as tmp:
            name = next(iter(curves.values())).name
            # a log scale for losses: one diverging model must not flatten the others
            plot = plot_lines(curves, Path(tmp) / "curves.png", f"{dataset}: validation curves",
                              ylabel=name, log_y=name.endswith("loss"))
            return {"comparison": run.put_table(pa.Table.from_pandas(table, preserve_index=False)),
                    "plot": run.put_file(plot, stage="comparison-plot")}

    parents = [ref for refs in trained.values() for ref in (refs["model"], refs["metrics"], refs["history"])]
    run = StageRun(store, "comparison", __name__, parents=parents)
    refs = run.run(produce, force)
    table = read_parquet(refs["comparison"].path).to_pylist()
    logger().info("zoo on %s:\n%s", dataset, pd.DataFrame(table).to_string(index=False))
    publish_table(f"zoo-{dataset}", table, f"Model comparison on {dataset}; plot: {refs['plot'].path}")
    return reported(refs, run)
