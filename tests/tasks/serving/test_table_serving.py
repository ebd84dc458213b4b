"""Using a model trained on a table with a text column and imputed missing values: predict fills
and encodes new rows as training did, counts categories training never saw and reports them as
drift (a refusal under --strict), and the exported SavedModel takes the raw rows, text included,
and gives predict's numbers. A text label column's names reach the predictions."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tasks.core.params import TrainParams
from tasks.serving.drift import DriftError, check_new_data
from tasks.serving.export import export
from tasks.serving.predict import predictions
from tasks.serving.resolve import trained
from tasks.stages.report import class_names
from tasks.stages.scale import StandardScaler
from tasks.stages.table import TableOptions
from tasks.store.dataset import read_frame, read_parquet

TARGET = "MedHouseVal"


def with_region(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["region"] = np.where(df["Latitude"] > 37.5, "north", np.where(df["Longitude"] > -118.5, "south", "coast"))
    return df


@pytest.fixture(scope="module")
def table_model(build_store, housing_rows, tmp_path_factory):
    """A Wide & Deep regressor (2 epochs) on 3,000 real housing rows with a region and 1 % of
    AveBedrms missing, imputed."""
    folder = tmp_path_factory.mktemp("table-serving")
    df = with_region(housing_rows.iloc[:3_000])
    df.loc[np.random.default_rng(1).choice(3_000, 30, replace=False), "AveBedrms"] = np.nan
    df.to_csv(folder / "houses.csv", index=False)
    built = build_store(folder / "artifacts", folder / "houses.csv", TARGET, "regression",
                        [TrainParams("wide_deep", epochs=2)], gate=False, options=TableOptions(missing="impute"))
    return built.store, trained(built.store, built.models["wide_deep"].sha256)


@pytest.fixture
def new_rows(housing_held_out, tmp_path):
    """200 held-out rows: ten of a region training never saw, five with AveBedrms missing."""
    df = with_region(housing_held_out.drop(columns=[TARGET])).iloc[:200].reset_index(drop=True)
    df.loc[:9, "region"] = "atlantis"
    df.loc[10:14, "AveBedrms"] = np.nan
    path = tmp_path / "new.csv"
    df.to_csv(path, index=False)
    return df, path


def test_unseen_categories_are_counted_and_reported_as_drift_and_refused_under_strict(table_model, new_rows):
    _, found = table_model
    _, path = new_rows
    warnings = []
    checked = check_new_data(path, found, False, warnings.append, print)
    assert checked.unseen == {"region": 10}
    assert "feature region: 10 of 200 rows hold categories training never saw ('atlantis'): scored as unseen" \
        in warnings[0]
    with pytest.raises(DriftError, match=r"region: 10 of 200 rows .*'atlantis'.*\n\(--strict: nothing was scored\)"):
        check_new_data(path, found, True, warnings.append, print)


def test_predict_fills_and_encodes_new_rows_as_training_did(table_model, new_rows):
    _, found = table_model
    df, path = new_rows
    scored = predictions(found, check_new_data(path, found, False, lambda _: None, print))["prediction"].to_numpy()
    assert np.isfinite(scored).all() and np.std(scored) > 0.1
    filled = df.copy()  # the holes given the value imputation learnt: the same predictions
    median = StandardScaler.from_arrow(read_parquet(found.scaler.path)).fill_[
        list(found.spec.features).index("AveBedrms")]
    filled.loc[10:14, "AveBedrms"] = median
    filled.to_csv(path.with_name("filled.csv"), index=False)
    again = predictions(found, check_new_data(path.with_name("filled.csv"), found, False, lambda _: None, print))
    np.testing.assert_allclose(again["prediction"].to_numpy(), scored, rtol=1e-6)


def test_the_export_takes_raw_rows_with_text_and_gives_predict_s_numbers(table_model, new_rows):
    import tensorflow as tf

    store, found = table_model
    df, path = new_rows
    folder = export(store, found)
    signature = json.loads((folder / "signature.json").read_text())
    assert signature["dtypes"] == {"features": "float32", "region": "string"}
    loaded = tf.saved_model.load(str(folder / "saved_model"))  # held: its variables live as long as it does
    served = loaded.serve({
        "features": tf.constant(df[signature["inputs"]["features"]].to_numpy(np.float32)),
        "region": tf.constant(df[["region"]].to_numpy(str))})
    expected = predictions(found, check_new_data(path, found, False, lambda _: None, print))["prediction"].to_numpy()
    np.testing.assert_allclose(np.asarray(served).ravel(), expected, atol=1e-5, rtol=1e-5)


def test_a_text_label_column_s_names_are_in_the_predictions(build_store, housing_rows, housing_held_out, tmp_path):
    df = housing_rows.iloc[:1_500].copy()
    df["price"] = np.where(df.pop(TARGET) > 2.0, "high", "low")
    df.to_csv(tmp_path / "priced.csv", index=False)
    built = build_store(tmp_path / "artifacts", tmp_path / "priced.csv", "price", "classification",
                        [TrainParams("mlp", epochs=1)], gate=False)
    found = trained(built.store, built.models["mlp"].sha256)
    new = housing_held_out.drop(columns=[TARGET]).iloc[:50]
    new.to_csv(tmp_path / "new.csv", index=False)
    table = predictions(found, check_new_data(tmp_path / "new.csv", found, False, lambda _: None, print))
    assert found.spec.class_names == ("high", "low")
    scaled = read_frame(built.data["scaled"].path)  # the reports (per class, confusion matrix) name them too
    assert class_names(scaled.part("test"), 2) == ["high", "low"]
    assert table["label"].to_pylist() == [("high", "low")[k] for k in table["prediction"].to_pylist()]


def test_a_column_training_dropped_as_constant_is_not_asked_of_new_rows(build_store, housing_rows,
                                                                        housing_held_out, tmp_path):
    df = housing_rows.iloc[:1_500].assign(Flag=1.0)  # an extract's flag, the same in every row
    df.to_csv(tmp_path / "flagged.csv", index=False)
    built = build_store(tmp_path / "artifacts", tmp_path / "flagged.csv", TARGET, "regression",
                        [TrainParams("mlp30", epochs=1)], gate=False, options=TableOptions(drop_constant=True))
    found = trained(built.store, built.models["mlp30"].sha256)
    assert "Flag" in found.spec.features and "Flag" not in found.inputs.features
    new = housing_held_out.drop(columns=[TARGET]).iloc[:100]
    new.to_csv(tmp_path / "without.csv", index=False)
    new.assign(Flag=0.0).to_csv(tmp_path / "with.csv", index=False)
    scored = [predictions(found, check_new_data(tmp_path / f"{name}.csv", found, False, lambda _: None, print))
              for name in ("without", "with")]
    np.testing.assert_array_equal(scored[0]["prediction"].to_numpy(), scored[1]["prediction"].to_numpy())
