"""A search's record: one row per trial, its Parquet artifact, its picture, its Prefect table.

A trial's row comes from what the training stage stored (the model's lineage record), or
from its failure: a diverged trial (NaN loss) and a crashed one are rows with a status and
a reason, left out of the choice.
"""
from __future__ import annotations

import dataclasses
import math
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.store.artifacts import ArtifactRef, ArtifactStore, stable_hash
from tasks.store.dataset import read_parquet
from tasks.store.publish import publish_table
from tasks.store.stage import StageRun, logger, reported


class Status(StrEnum):
    """What became of a trial; the trial table's ``status`` column holds these words."""

    OK = "ok"  # trained to its end (or stopped early): a candidate for the best
    PRUNED = "pruned"  # halving stopped it at a rung: not in the best 1/reduction_factor there
    PROMOTED = "promoted"  # scikit-learn's halving: went on to the next rung (its last rung is another row)
    DIVERGED = "diverged"  # the loss became NaN: the space's or the settings' fault
    FAILED = "failed"  # crashed: the program's fault

    @property
    def made_progress(self) -> bool:
        """Whether it breaks a run of failures (the search stops after too many in a row)."""
        return self in (Status.OK, Status.PRUNED, Status.PROMOTED)


@dataclass(frozen=True)
class TrialRow:
    """One trial of a search: the proposed values and what came of them (one row of the table)."""

    trial: int
    params: dict[str, Any]  # the proposed values, by parameter name
    status: Status
    val_loss: float = math.nan  # the best validation loss (the choice minimises it)
    epochs_run: int = 0
    seconds: float = 0.0
    reason: str = ""  # why it did not finish (diverged, failed, pruned)
    model: str = ""  # the model artifact's path
    worker: str = ""  # host:pid of the process that trained it
    rung: int | None = None  # halving: the rung it reached and that rung's epochs
    budget: int | None = None
    cv_score: float | None = None  # scikit-learn's searches: the mean fold score

    def record(self) -> dict[str, Any]:
        """The row as the trial table lays it out: a column per parameter, then the facts; the
        facts a strategy does not have (rungs, fold scores) are left out."""
        facts = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("trial", "params")}
        return {"trial": self.trial, **self.params, **{k: str(v) if isinstance(v, Status) else v
                                                        for k, v in facts.items() if v is not None}}


def trial_row(number: int, params: dict[str, Any], outcome: dict[str, ArtifactRef] | BaseException) -> TrialRow:
    """The row of one finished trial: its parameters, validation loss, epochs, seconds, status."""
    if isinstance(outcome, BaseException):
        status = Status.DIVERGED if isinstance(outcome, FloatingPointError) else Status.FAILED
        return TrialRow(number, params, status, reason=f"{type(outcome).__name__}: {outcome}"[:300])
    facts = ArtifactStore.record(outcome["model"]).training
    return TrialRow(number, params, Status.OK, val_loss=facts.best_val_loss, epochs_run=facts.epochs_run,
                    seconds=round(facts.train_seconds, 2), model=outcome["model"].path, worker=facts.worker or "")


def best_row(rows: list[TrialRow]) -> TrialRow | None:
    """The finished trial with the lowest validation loss (the earliest of equals)."""
    finished = [r for r in rows if r.status is Status.OK]
    return min(finished, key=lambda r: (r.val_loss, r.trial)) if finished else None


class Progress:
    """The rows so far, the failures in a row, and one progress line per trial for the terminal."""

    def __init__(self, plan):
        self.plan, self.rows, self.failed_in_a_row = plan, [], 0

    def add(self, row: TrialRow) -> None:
        self.rows.append(row)
        self.failed_in_a_row = 0 if row.status.made_progress else self.failed_in_a_row + 1
        best = best_row(self.rows)
        outcome = f"val_loss {row.val_loss:.4f}" if row.status is Status.OK else f"{row.status}: {row.reason}"
        total = len(self.rows) if self.plan.sklearn else self.plan.trials  # scikit-learn's report comes whole
        logger().info("trial %d/%d %s: %s%s", len(self.rows), total, row.params, outcome,
                      f" (best so far {best.val_loss:.4f}, trial {best.trial})" if best else "")


def plot_search(table: pd.DataFrame, curves: dict[int, pd.Series], path: Path, title: str,
                rungs: list[int] | None = None) -> Path:
    """Three panels: the best validation loss so far against trials; each trial's against its
    learning rate, coloured by depth; and the trials' validation curves overlaid (with the
    rungs where halving judged them)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = table[table["status"] == Status.OK]
    fig, (trend, by_rate, lines) = plt.subplots(1, 3, figsize=(17, 5))
    trend.plot(ok["trial"], ok["val_loss"], "o", label="trial")
    trend.step(ok["trial"], ok["val_loss"].cummin(), where="post", label="best so far")
    spread = "log" if len(ok) and ok["val_loss"].max() > 10 * ok["val_loss"].min() else "linear"
    trend.set(xlabel="trial", ylabel="validation loss", yscale=spread, title="best so far")
    trend.legend()
    if "learning_rate" in ok and len(ok):
        colour = ok["depth"] if "depth" in ok else None
        shade = {"c": colour, "cmap": "viridis"} if colour is not None else {}
        dots = by_rate.scatter(ok["learning_rate"], ok["val_loss"], **shade)
        if colour is not None:
            fig.colorbar(dots, ax=by_rate, label="depth")
        by_rate.set(xscale="log", yscale=spread, xlabel="learning rate", ylabel="validation loss",
                    title="validation loss by learning rate")
    for trial, curve in curves.items():
        lines.plot(curve.index, curve.values, label=f"trial {trial}" if len(curves) <= 10 else None)
    for budget in rungs or []:
        lines.axvline(budget, color="grey", linestyle=":")
    lines.set(xlabel="epoch", ylabel="val_loss", yscale="log", title="learning curves (validation)")
    if 0 < len(curves) <= 10:
        lines.legend(fontsize=7)
    for ax in (trend, by_rate, lines):
        ax.grid(True, alpha=0.4)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _curves(histories: dict[int, ArtifactRef]) -> dict[int, pd.Series]:
    curves = {}
    for trial, ref in histories.items():
        history = read_parquet(ref.path).to_pandas()
        curves[trial] = history.set_index("epoch")["val_loss"]
    return curves


@task(name="warm-up-worker", cache_policy=NO_CACHE)
def warm_up_task() -> str:
    """Import Keras in a trial worker while the flow prepares the data, so that its first
    trial starts warm; returns which worker it ran in."""
    import keras  # noqa: F401

    from tasks.stages.train import worker

    return worker()


@task(name="record-search", cache_policy=NO_CACHE)
def record_search_task(rows: list[TrialRow], trials: dict[int, dict[str, ArtifactRef]], scaled: ArtifactRef,
                       strategy: str, artifacts: str, force: bool = False, rungs: list[int] | None = None
                       ) -> dict[str, ArtifactRef]:
    """Write the table of all trials and the search's picture; publish the table in Prefect."""
    store = ArtifactStore(artifacts)
    table = pd.DataFrame([row.record() for row in rows])

    def produce(run: StageRun) -> dict[str, ArtifactRef]:
        refs = {"trials": run.put_table(pa.Table.from_pandas(table, preserve_index=False))}
        if (table["status"] == Status.OK).any():
            with tempfile.TemporaryDirectory(dir=store.root) as tmp:
                curves = _curves({n: refs["history"] for n, refs in trials.items()})
                plot = plot_search(table, curves, Path(tmp) / "trials.png", f"{strategy} search", rungs)
                refs["trials_plot"] = run.put_file(plot, stage="search-plot")
        return refs

    models = [refs["model"] for refs in trials.values()]
    outcomes = stable_hash([{k: v for k, v in row.record().items() if k not in ("seconds", "worker", "model")}
                           for row in rows])
    run = StageRun(store, "search", __name__, parents=[scaled, *models], params={"strategy": strategy,
                                                                                 "trials": outcomes})
    refs = run.run(produce, force)
    publish_table(f"{run.dataset}-search-{strategy}", table.drop(columns=["model"]).round(6).to_dict("records"),
                  f"{strategy} search on {run.dataset}: {len(table)} trials")
    return reported(refs, run)
