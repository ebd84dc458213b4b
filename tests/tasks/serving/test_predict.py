"""The predictions table: its columns, and that it is the stored model's own output on the scaled rows."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.core.params import TrainParams
from tasks.model import files as model_files
from tasks.serving.drift import NewRows
from tasks.serving.predict import predictions
from tasks.serving.resolve import trained
from tasks.store.dataset import read_parquet

HOUSING_TARGET = "MedHouseVal"
PIXELS = [f"px{i}" for i in range(784)]


@pytest.fixture(scope="module")
def housing_models(build_store, housing_table, tmp_path_factory):
    """The course's MLP and the two-headed Wide & Deep, one epoch each on 3,000 real housing rows."""
    return build_store(tmp_path_factory.mktemp("predict-housing") / "artifacts", housing_table, HOUSING_TARGET,
                       "regression", [TrainParams("mlp30", epochs=1), TrainParams("wide_deep_multi_output", epochs=1)],
                       gate=False)


@pytest.fixture(scope="module")
def fashion_rows(fashion) -> tuple[pd.DataFrame, np.ndarray]:
    """1,500 real Fashion-MNIST training images as a table (pixels and label), and 300 test images' pixels."""
    rng = np.random.default_rng(1)
    rows = rng.choice(60_000, 1_500, replace=False)
    table = pd.DataFrame(fashion.X[rows].reshape(1_500, -1), columns=PIXELS)
    table["label"] = fashion.y[rows].astype(np.int64)
    new = fashion.X[60_000 + rng.choice(10_000, 300, replace=False)].reshape(300, -1).astype(np.float64)
    return table, new


@pytest.fixture(scope="module")
def classifier(build_store, fashion_rows, tmp_path_factory):
    """The course's Fashion-MNIST MLP, one epoch on the 1,500-image table."""
    folder = tmp_path_factory.mktemp("predict-fashion")
    fashion_rows[0].to_parquet(folder / "fashion-slice.parquet", index=False)
    built = build_store(folder / "artifacts", folder / "fashion-slice.parquet", "label", "classification",
                        [TrainParams("mlp", epochs=1)], gate=False)
    return trained(built.store, built.models["mlp"].sha256)


def own_predict(found, X: np.ndarray):
    """What the stored model itself says on X scaled by hand with the stored scaler's mean and scale."""
    scaler = read_parquet(found.scaler.path).to_pydict()
    assert scaler["feature"] == list(found.spec.features)  # X's columns, in X's order
    scaled = ((X - np.array(scaler["mean"])) / np.array(scaler["scale"])).astype(np.float32)
    model = model_files.load(found.model.path)
    return model, scaled


def test_a_regressor_s_table_is_row_and_prediction_the_model_s_own_output(housing_models, housing_held_out):
    found = trained(housing_models.store, housing_models.models["mlp30"].sha256)
    X = housing_held_out[list(found.spec.features)].to_numpy(np.float64)
    table = predictions(found, NewRows(X, None, "new.csv"))
    assert table.column_names == ["row", "prediction"]
    assert str(table.schema.field("row").type) == "int64" and str(table.schema.field("prediction").type) == "double"
    assert table["row"].to_pylist() == list(range(len(X)))
    model, scaled = own_predict(found, X)
    expected = model.predict(scaled, verbose=0).ravel()
    np.testing.assert_allclose(table["prediction"].to_numpy(), expected, rtol=1e-5, atol=1e-6)
    assert np.std(expected) > 0.1  # a model that says something per row, so the comparison means something


def test_rows_are_scored_each_on_its_own(housing_models, housing_held_out):
    """The first ten rows alone get the same predictions as within the whole table, in the order given."""
    found = trained(housing_models.store, housing_models.models["mlp30"].sha256)
    X = housing_held_out[list(found.spec.features)].to_numpy(np.float64)
    whole = predictions(found, NewRows(X, None, "new.csv"))["prediction"].to_numpy()
    reversed_ten = predictions(found, NewRows(X[9::-1], None, "new.csv"))["prediction"].to_numpy()
    np.testing.assert_allclose(reversed_ten, whole[9::-1], rtol=1e-6)


def test_a_two_headed_model_s_prediction_is_its_main_head(housing_models, housing_held_out):
    found = trained(housing_models.store, housing_models.models["wide_deep_multi_output"].sha256)
    X = housing_held_out[list(found.spec.features)].to_numpy(np.float64)
    table = predictions(found, NewRows(X, None, "new.csv"))
    assert table.column_names == ["row", "prediction"]
    model, scaled = own_predict(found, X)
    columns = list(found.spec.features)
    inputs = {name: scaled[:, [columns.index(c) for c in cols]]
              for name, cols in {"wide": ("MedInc", "HouseAge", "AveRooms", "AveBedrms", "Population"),
                                 "deep": ("AveRooms", "AveBedrms", "Population", "AveOccup", "Latitude",
                                          "Longitude")}.items()}
    heads = model.predict(inputs, verbose=0)
    main, aux = (np.asarray(heads[k]).ravel() for k in ("main", "aux")) if isinstance(heads, dict) else (
        np.asarray(h).ravel() for h in heads)
    np.testing.assert_allclose(table["prediction"].to_numpy(), main, rtol=1e-5, atol=1e-6)
    assert np.abs(main - aux).max() > 1e-3  # the heads differ: the main one was picked, not either


def test_a_classifier_s_table_has_the_class_and_probabilities_that_sum_to_one(classifier, fashion_rows):
    new = fashion_rows[1]
    table = predictions(classifier, NewRows(new, None, "new.csv"))
    assert table.column_names == ["row", "prediction", *(f"probability_{k}" for k in range(10))]
    assert str(table.schema.field("prediction").type) == "int64"
    assert str(table.schema.field("probability_0").type) == "float"
    probabilities = np.column_stack([table[f"probability_{k}"].to_numpy() for k in range(10)])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert (probabilities >= 0).all()
    np.testing.assert_array_equal(table["prediction"].to_numpy(), probabilities.argmax(axis=1))
    model, scaled = own_predict(classifier, new)
    np.testing.assert_allclose(probabilities, model.predict(scaled, verbose=0), rtol=1e-4, atol=1e-6)
    assert len(np.unique(table["prediction"].to_numpy())) > 3  # a classifier that tells classes apart
