"""A search's record: trial rows and their layout, the best of them, the failure count, its picture and table."""
from __future__ import annotations

import dataclasses
import logging
import math
import os

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.steps.pipeline import value
from tasks.core.params import TrainParams
from tasks.search.plan import SearchPlan
from tasks.search.space import COURSE_SPACE
from tasks.search.trials import Progress, Status, TrialRow, best_row, plot_search, record_search_task, trial_row
from tasks.stages.train import TrainingDiverged, train_task
from tasks.store.artifacts import ArtifactStore
from tasks.store.dataset import read_parquet, to_arrow

PARAMS = {"depth": 2, "width": 30, "learning_rate": 3e-3}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return ArtifactStore(tmp_path_factory.mktemp("trial-artifacts"))


@pytest.fixture(scope="module")
def scaled(small_housing, store):
    return store.put_table(to_arrow(small_housing), "scaled")


@pytest.fixture(scope="module")
def trained(scaled, store):
    """One real trial: the course's regressor, 3 epochs on the scaled housing slice."""
    return train_task.fn(scaled, TrainParams("mlp30", epochs=3, depth=2, width=30, learning_rate=3e-3),
                         str(store.root))


def _row(trial: int, status: Status, val_loss: float = math.nan, **facts) -> TrialRow:
    return TrialRow(trial, {**PARAMS, "width": 10 + trial}, status, val_loss=val_loss, **facts)


def test_a_record_is_the_trial_its_parameters_then_the_facts():
    row = TrialRow(7, {"learning_rate": 0.01, "depth": 3}, Status.OK, val_loss=0.41, epochs_run=12, seconds=3.5,
                   model="artifacts/model/abc.keras", worker="host:12")
    record = row.record()
    assert list(record) == ["trial", "learning_rate", "depth", "status", "val_loss", "epochs_run", "seconds",
                            "reason", "model", "worker"]  # no rung, budget or cv_score: this strategy has none
    assert record == {"trial": 7, "learning_rate": 0.01, "depth": 3, "status": "ok", "val_loss": 0.41,
                      "epochs_run": 12, "seconds": 3.5, "reason": "", "model": "artifacts/model/abc.keras",
                      "worker": "host:12"}
    assert type(record["status"]) is str  # the word, not the enum: the Parquet column and Prefect's table


def test_a_record_keeps_rung_budget_and_fold_score_when_set_even_at_zero():
    row = TrialRow(2, {"width": 50}, Status.PROMOTED, val_loss=0.5, rung=1, budget=3, cv_score=0.0)
    record = row.record()
    assert list(record)[-3:] == ["rung", "budget", "cv_score"]
    assert (record["status"], record["rung"], record["budget"], record["cv_score"]) == ("promoted", 1, 3, 0.0)
    assert list(TrialRow(2, {"width": 50}, Status.PRUNED, rung=2, budget=9).record())[-2:] == ["rung", "budget"]


def test_the_records_of_a_search_round_trip_through_parquet(tmp_path):
    rows = [_row(1, Status.OK, 0.4, epochs_run=5), _row(2, Status.DIVERGED, reason="FloatingPointError: NaN"),
            _row(3, Status.PRUNED, 0.9, rung=1, budget=2)]
    path = tmp_path / "trials.parquet"
    pq.write_table(pa.Table.from_pandas(pd.DataFrame([r.record() for r in rows]), preserve_index=False), path)
    table = pd.read_parquet(path)
    assert list(table["status"]) == ["ok", "diverged", "pruned"] and list(table["width"]) == [11, 12, 13]
    assert table["rung"].isna().tolist() == [True, True, False]  # a column for all, empty where not set


@pytest.mark.parametrize("error, status", [
    (FloatingPointError("the loss became NaN"), Status.DIVERGED),
    (TrainingDiverged("mlp30: the training loss became NaN"), Status.DIVERGED),
    (RuntimeError("worker lost"), Status.FAILED),
    (MemoryError(), Status.FAILED),
])
def test_a_failed_trial_is_a_row_with_its_status_and_reason(error, status):
    row = trial_row(5, PARAMS, error)
    assert (row.trial, row.params, row.status) == (5, PARAMS, status)
    assert row.reason == f"{type(error).__name__}: {error}"
    assert math.isnan(row.val_loss) and row.epochs_run == 0 and row.model == ""


def test_a_long_reason_is_cut_at_300_characters():
    row = trial_row(1, PARAMS, RuntimeError("x" * 1_000))
    assert row.reason == "RuntimeError: " + "x" * 286 and len(row.reason) == 300


def test_a_really_diverged_training_is_a_diverged_row(scaled, store):
    with pytest.raises(FloatingPointError) as raised:
        train_task.fn(scaled, TrainParams("mlp30", epochs=1, learning_rate=1e12), str(store.root))
    row = trial_row(3, {"learning_rate": 1e12}, raised.value)
    assert row.status is Status.DIVERGED and "lower --learning-rate" in row.reason
    assert not row.status.made_progress


def test_a_finished_trial_is_a_row_of_its_stored_training_facts(trained):
    row = trial_row(4, PARAMS, trained)
    history = read_parquet(trained["history"].path).to_pandas()
    assert row.status is Status.OK and row.reason == ""
    assert row.val_loss == pytest.approx(history["val_loss"].min(), rel=1e-6)
    assert row.epochs_run == len(history) == 3 and row.seconds > 0
    assert row.model == trained["model"].path and row.worker.endswith(f":{os.getpid()}")


def test_the_best_row_has_the_lowest_validation_loss_and_is_the_earliest_of_equals():
    rows = [_row(1, Status.OK, 0.5), _row(2, Status.OK, 0.3), _row(3, Status.OK, 0.3), _row(4, Status.OK, 0.7)]
    assert best_row(rows).trial == 2
    assert best_row(rows[::-1]).trial == 2  # the earliest by trial number, not by place in the list


def test_only_finished_trials_can_be_best():
    rows = [_row(1, Status.OK, 0.5), _row(2, Status.PRUNED, 0.1), _row(3, Status.PROMOTED, 0.2),
            _row(4, Status.DIVERGED), _row(5, Status.FAILED, 0.05)]
    assert best_row(rows).trial == 1
    assert best_row(rows[1:]) is None and best_row([]) is None


def test_pruned_and_promoted_trials_break_a_run_of_failures():
    progress = Progress(SearchPlan("random", COURSE_SPACE, n_iter=9))
    counts = []
    for status in (Status.FAILED, Status.DIVERGED, Status.PRUNED, Status.FAILED, Status.PROMOTED, Status.DIVERGED,
                   Status.FAILED, Status.OK, Status.FAILED):
        progress.add(_row(len(progress.rows) + 1, status, 0.5 if status is Status.OK else math.nan))
        counts.append(progress.failed_in_a_row)
    assert counts == [1, 2, 0, 1, 0, 1, 2, 0, 1]
    assert len(progress.rows) == 9


def test_each_trial_logs_its_outcome_and_the_best_so_far(caplog):
    caplog.set_level(logging.INFO, logger="pipeline")
    progress = Progress(SearchPlan("random", COURSE_SPACE, n_iter=3))
    progress.add(_row(1, Status.FAILED, reason="RuntimeError: boom"))
    progress.add(_row(2, Status.OK, 0.61234))
    progress.add(_row(3, Status.OK, 0.7))
    assert caplog.messages[0].startswith("trial 1/3 {") and caplog.messages[0].endswith("}: failed: RuntimeError: boom")
    assert caplog.messages[1].endswith(": val_loss 0.6123 (best so far 0.6123, trial 2)")
    assert caplog.messages[2].endswith(": val_loss 0.7000 (best so far 0.6123, trial 2)")


def _png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_the_search_picture_is_a_png_for_a_table_of_finished_and_failed_trials(trained, tmp_path):
    rows = [trial_row(1, PARAMS, trained), _row(2, Status.FAILED, reason="RuntimeError: boom"),
            _row(3, Status.OK, 0.9, epochs_run=3), _row(4, Status.DIVERGED, reason="FloatingPointError: NaN"),
            _row(5, Status.PRUNED, 1.5, rung=1, budget=1)]
    table = pd.DataFrame([r.record() for r in rows])
    history = read_parquet(trained["history"].path).to_pandas().set_index("epoch")["val_loss"]
    curves = {1: history, 3: history * 1.5}
    path = plot_search(table, curves, tmp_path / "trials.png", "random search", rungs=[1, 3])
    assert path == tmp_path / "trials.png" and _png(path)


def test_the_search_picture_needs_no_learning_rate_nor_depth_and_takes_many_curves(tmp_path):
    rows = [TrialRow(n, {"optimizer": name}, Status.OK, val_loss=0.3 * n) for n, name in enumerate(
        ["sgd", "adam", "nadam", "rmsprop"] * 3, start=1)] + [TrialRow(13, {"optimizer": "sgd"}, Status.FAILED)]
    table = pd.DataFrame([r.record() for r in rows])
    curves = {n: pd.Series([1.0 / n, 0.5 / n], index=[1, 2]) for n in range(1, 13)}
    assert _png(plot_search(table, curves, tmp_path / "optimizers.png", "grid search"))


def test_the_recorded_search_is_keyed_by_its_trials_not_only_by_its_strategy(tmp_path):
    """Two scikit-learn searches on the same data (no trained models among the parents) keep
    their own tables: a second search is not handed the first one's record."""
    record = lambda rows: value(record_search_task.fn(rows, {}, scaled, "sklearn-random", str(tmp_path)))  # noqa: E731
    scaled = ArtifactStore(tmp_path).put_table(pa.table({"x": [1.0, 2.0]}), "scaled")
    row = TrialRow(1, {"learning_rate": 0.01}, Status.DIVERGED, seconds=1.0, reason="NaN", worker="a")
    first, other = record([row]), record([row, dataclasses.replace(row, trial=2)])
    again = record([dataclasses.replace(row, seconds=9.0, worker="b")])
    assert len(pd.read_parquet(other["trials"].path)) == 2 and other["trials"] != first["trials"]
    assert again["trials"] == first["trials"]  # the same outcomes: the record is reused
