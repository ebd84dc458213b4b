"""A search's record: one row per trial, its Parquet artifact, its pictures, its Prefect table.

A trial's row comes from what the training stage stored (the model's lineage record), or
from its failure: a diverged trial (NaN loss) and a crashed one are rows with a status and
a reason, left out of the choice.
"""
from __future__ import annotations

import math
import re
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.plots import plot_lines
from tasks.stage import StageRun, logger, reported
from tasks.store import ArtifactRef, ArtifactStore


def trial_row(number: int, params: dict[str, Any], outcome: dict[str, ArtifactRef] | BaseException) -> dict[str, Any]:
    """The row of one finished trial: its parameters, validation loss, epochs, seconds, status."""
    row = {"trial": number, **params}
    if isinstance(outcome, BaseException):
        diverged = isinstance(outcome, FloatingPointError)
        return {**row, "val_loss": math.nan, "epochs_run": 0, "seconds": 0.0, "status":
                "diverged" if diverged else "failed", "reason": f"{type(outcome).__name__}: {outcome}"[:300],
                "model": ""}
    facts = ArtifactStore.record(outcome["model"]).training
    return {**row, "val_loss": facts.best_val_loss, "epochs_run": facts.epochs_run,
            "seconds": round(facts.train_seconds, 2), "status": "ok", "reason": "", "model": outcome["model"].path}


def best_row(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    finished = [r for r in rows if r["status"] == "ok"]
    return min(finished, key=lambda r: (r["val_loss"], r["trial"])) if finished else None


def plot_trials(table: pd.DataFrame, path: Path, title: str) -> Path:
    """Best validation loss so far against the trial number, and each trial's own."""
    ok = table[table["status"] == "ok"].set_index("trial")["val_loss"]
    return plot_lines({"trial's best val_loss": ok, "best so far": ok.cummin()}, path, title,
                      ylabel="val_loss", log_y=True)


@task(name="record-search", cache_policy=NO_CACHE)
def record_search_task(rows: list[dict[str, Any]], trials: list[ArtifactRef], scaled: ArtifactRef,
                       strategy: str, artifacts: str, force: bool = False) -> dict[str, ArtifactRef]:
    """Write the table of all trials and the best-so-far plot; publish the table in Prefect."""
    store = ArtifactStore(artifacts)
    table = pd.DataFrame(rows)

    def produce(run: StageRun) -> dict[str, ArtifactRef]:
        refs = {"trials": run.put_table(pa.Table.from_pandas(table, preserve_index=False))}
        if (table["status"] == "ok").any():
            with tempfile.TemporaryDirectory(dir=store.root) as tmp:
                plot = plot_trials(table, Path(tmp) / "trials.png", f"{strategy} search: validation loss")
                refs["trials_plot"] = run.put_file(plot, stage="search-plot")
        return refs

    run = StageRun(store, "search", __name__, parents=[scaled, *trials], params={"strategy": strategy})
    refs = run.run(produce, force)
    try:
        from prefect.artifacts import create_table_artifact

        dataset = run.dataset
        create_table_artifact(key=re.sub(r"[^a-z0-9-]+", "-", f"{dataset}-search-{strategy}".lower()),
                              table=table.drop(columns=["model"]).round(6).to_dict("records"),
                              description=f"{strategy} search on {dataset}: {len(table)} trials")
    except Exception as error:  # outside a Prefect run
        logger().debug("no Prefect table artifact: %s", error)
    return reported(refs, run)
