"""The zoo's comparison: the table's order, each model's best validation value, the curves by epoch."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.stages.compare import compare
from tasks.stages.evaluate import evaluate
from tasks.stages.train import train


def _history(values: list[float], curve: str) -> pd.DataFrame:
    epochs = range(1, len(values) + 1)
    return pd.DataFrame({"epoch": list(epochs), "loss": [1.0] * len(values), curve: values})


@pytest.fixture
def classifiers():
    """Three classifiers whose test loss and test accuracy disagree on the order."""
    rows = [{"model": "mlp", "weights": 266_610, "test_loss": 0.30, "test_accuracy": 0.86},
            {"model": "cnn", "weights": 1_400_000, "test_loss": 0.35, "test_accuracy": 0.91},
            {"model": "deep", "weights": 190_000, "test_loss": 0.60, "test_accuracy": 0.78}]
    histories = {"mlp": _history([0.80, 0.85, 0.87, 0.86], "val_accuracy"),
                 "cnn": _history([0.85, 0.90, 0.92], "val_accuracy"),
                 "deep": _history([0.10, 0.75, 0.79, 0.70, 0.77], "val_accuracy")}
    return rows, histories


def test_classifiers_are_ranked_by_test_accuracy_highest_first(classifiers):
    table, _ = compare(*classifiers, "classification")
    assert list(table["model"]) == ["cnn", "mlp", "deep"]  # not the test-loss order (mlp, cnn, deep)
    assert list(table.index) == [0, 1, 2]
    assert list(table["weights"]) == [1_400_000, 266_610, 190_000]  # each row keeps its own facts


def test_each_classifier_carries_its_best_validation_accuracy(classifiers):
    table, _ = compare(*classifiers, "classification")
    assert "best_val_loss" not in table
    assert dict(zip(table["model"], table["best_val_accuracy"])) == {"cnn": 0.92, "mlp": 0.87, "deep": 0.79}


def test_the_classifiers_curves_are_their_validation_accuracy_by_epoch_in_the_tables_order(classifiers):
    _, curves = compare(*classifiers, "classification")
    assert list(curves) == ["cnn", "mlp", "deep"]
    deep = curves["deep"]
    assert deep.name == "val_accuracy" and deep.index.name == "epoch"
    assert list(deep.index) == [1, 2, 3, 4, 5] and list(deep) == [0.10, 0.75, 0.79, 0.70, 0.77]


def test_regressors_are_ranked_by_test_loss_lowest_first_with_their_lowest_validation_loss():
    rows = [{"model": "wide_deep", "test_loss": 0.41}, {"model": "mlp30", "test_loss": 0.35},
            {"model": "wide_deep_multi_output", "test_loss": 0.52}]
    histories = {"wide_deep": _history([0.9, 0.5, 0.45, 0.47], "val_loss"),
                 "mlp30": _history([0.8, 0.38, 0.36], "val_loss"),
                 "wide_deep_multi_output": _history([1.2, 0.6, 0.55, 0.5, 0.56], "val_loss")}
    table, curves = compare(rows, histories, "regression")
    assert list(table["model"]) == ["mlp30", "wide_deep", "wide_deep_multi_output"]
    assert list(table["best_val_loss"]) == [0.36, 0.45, 0.5]
    assert list(curves) == list(table["model"])
    assert list(curves["wide_deep_multi_output"].index) == [1, 2, 3, 4, 5]
    assert curves["mlp30"].name == "val_loss"


@pytest.fixture(scope="module")
def zoo_of_two(small_housing, tmp_path_factory):
    """Two course regressors really trained on the scaled housing slice, and their test losses."""
    workdir, test = tmp_path_factory.mktemp("zoo"), small_housing.part("test")
    rows, histories = [], {}
    for model, epochs in (("mlp30", 3), ("wide_deep", 2)):
        result = train(small_housing, model, workdir / model, epochs=epochs, batch_size=64, seed=2)
        rows.append({"model": model, "epochs_run": len(result.history), "weights": result.weights,
                     "test_loss": evaluate(result.model_path, test, model)["loss"]})
        histories[model] = result.history
    return rows, histories


def test_really_trained_models_compare_by_their_stored_histories(zoo_of_two, tmp_path):
    rows, histories = zoo_of_two
    table, curves = compare(rows, histories, "regression")
    assert list(table["test_loss"]) == sorted(r["test_loss"] for r in rows)
    for _, row in table.iterrows():
        history = histories[row["model"]]
        assert row["best_val_loss"] == history["val_loss"].min()
        assert list(curves[row["model"]].index) == list(range(1, row["epochs_run"] + 1))  # epochs from 1
        np.testing.assert_array_equal(curves[row["model"]].to_numpy(), history["val_loss"].to_numpy())
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), tmp_path / "comparison.parquet")
    stored = pd.read_parquet(tmp_path / "comparison.parquet")
    pd.testing.assert_frame_equal(stored, table)  # what the compare stage stores is this table
