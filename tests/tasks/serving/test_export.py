"""The serving export: the scaler folded in front of the model, written once as a SavedModel and its signature."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tasks.core.params import TrainParams
from tasks.model import files as model_files
from tasks.serving.export import export, export_path, serving_model
from tasks.serving.resolve import trained
from tasks.store.dataset import read_parquet

HOUSING_TARGET = "MedHouseVal"
WIDE = ["MedInc", "HouseAge", "AveRooms", "AveBedrms", "Population"]
DEEP = ["AveRooms", "AveBedrms", "Population", "AveOccup", "Latitude", "Longitude"]


@pytest.fixture(scope="module")
def models(build_store, housing_table, tmp_path_factory):
    """The course's MLP and the two-input Wide & Deep, one epoch each on 3,000 real housing rows."""
    built = build_store(tmp_path_factory.mktemp("export") / "artifacts", housing_table, HOUSING_TARGET,
                        "regression", [TrainParams("mlp30", epochs=1), TrainParams("wide_deep_multi_input", epochs=1)],
                        gate=False)
    return built.store, {name: trained(built.store, ref.sha256) for name, ref in built.models.items()}


@pytest.fixture(scope="module")
def exported(models):
    """The MLP's export folder, exported once for the module."""
    store, found = models
    return export(store, found["mlp30"])


@pytest.fixture
def raw_rows(housing_held_out):
    return housing_held_out.drop(columns=[HOUSING_TARGET])


def scaled_by_hand(found, X: np.ndarray) -> np.ndarray:
    scaler = read_parquet(found.scaler.path).to_pydict()
    return ((X - np.array(scaler["mean"])) / np.array(scaler["scale"])).astype(np.float32)


def test_the_serving_model_on_raw_features_is_the_scaler_then_the_model(models, raw_rows):
    _, found = models
    mlp = found["mlp30"]
    X = raw_rows[list(mlp.spec.features)].to_numpy(np.float64)
    served = np.asarray(serving_model(mlp).predict(X.astype(np.float32), verbose=0))
    expected = model_files.load(mlp.model.path).predict(scaled_by_hand(mlp, X), verbose=0)
    assert served.shape == expected.shape == (len(X), 1)
    np.testing.assert_allclose(served, expected, atol=1e-5, rtol=1e-5)
    assert np.abs(expected - model_files.load(mlp.model.path).predict(X.astype(np.float32), verbose=0)).max() > 0.1
    # (unscaled rows give other values: the scaler is really in front)


def test_a_two_input_model_is_served_its_named_raw_columns_each_scaled_by_its_own_statistics(models, raw_rows):
    _, found = models
    wide_deep = found["wide_deep_multi_input"]
    columns = list(wide_deep.spec.features)
    X = raw_rows[columns].to_numpy(np.float64)
    served = serving_model(wide_deep).predict({"wide": raw_rows[WIDE].to_numpy(np.float32),
                                               "deep": raw_rows[DEEP].to_numpy(np.float32)}, verbose=0)
    scaled = scaled_by_hand(wide_deep, X)
    expected = model_files.load(wide_deep.model.path).predict(
        {"wide": scaled[:, [columns.index(c) for c in WIDE]], "deep": scaled[:, [columns.index(c) for c in DEEP]]},
        verbose=0)
    np.testing.assert_allclose(np.asarray(served), expected, atol=1e-5, rtol=1e-5)


def test_export_writes_the_saved_model_and_a_signature_with_the_input_columns_in_order(models, exported, raw_rows):
    store, found = models
    mlp = found["mlp30"]
    folder = exported
    assert folder == store.root / "export" / mlp.model.sha256 == export_path(store, mlp)
    assert (folder / "saved_model" / "saved_model.pb").is_file()
    signature = json.loads((folder / "signature.json").read_text())
    assert signature["inputs"] == {"features": ["MedInc", "HouseAge", "AveRooms", "AveBedrms", "Population",
                                                "AveOccup", "Latitude", "Longitude"]}
    assert signature["inputs"]["features"] == list(mlp.spec.features)
    assert signature["input_shapes"] == {"features": [8]} and signature["dtype"] == "float32"
    assert (signature["model"], signature["scaler"], signature["model_name"]) == (
        mlp.model.sha256, mlp.scaler.sha256, "mlp30")
    assert (signature["dataset"], signature["task"], signature["endpoint"]) == ("housing-train", "regression", "serve")
    assert (signature["outputs"], signature["output"]) == (["output"], "value")
    assert not list(folder.parent.glob(".tmp-*"))  # the work folder was renamed into place, nothing left


def test_the_saved_model_fed_the_signature_s_columns_gives_the_serving_model_s_outputs(models, exported, raw_rows):
    import tensorflow as tf

    _, found = models
    folder = exported
    signature = json.loads((folder / "signature.json").read_text())
    features = raw_rows[signature["inputs"]["features"]].to_numpy(np.float32)
    loaded = tf.saved_model.load(str(folder / "saved_model"))  # held: its endpoint reads the object's variables
    served = np.asarray(getattr(loaded, signature["endpoint"])(features))
    expected = serving_model(found["mlp30"]).predict(features, verbose=0)
    np.testing.assert_allclose(served, expected, atol=1e-5, rtol=1e-5)


def test_a_second_export_of_the_same_model_returns_its_folder_without_rewriting_it(models, exported):
    """Nothing is built or written again: no work folder comes and goes beside it (the time of the
    folder that holds the exports would change), and the export and its signature keep their times."""
    store, found = models
    folder = exported
    before = {path: path.stat().st_mtime_ns for path in (folder.parent, folder, folder / "signature.json")}
    assert export(store, found["mlp30"]) == folder
    assert {path: path.stat().st_mtime_ns for path in before} == before


def test_a_two_input_model_s_export_lists_each_input_and_replaces_a_killed_export_s_leftovers(models):
    """A folder without ``signature.json`` (a run killed while renaming) is not taken as an export."""
    store, found = models
    wide_deep = found["wide_deep_multi_input"]
    leftover = export_path(store, wide_deep)
    (leftover / "saved_model").mkdir(parents=True)
    (leftover / "saved_model" / "half-written").write_text("")
    folder = export(store, wide_deep)
    assert folder == leftover and not (folder / "saved_model" / "half-written").exists()
    assert (folder / "saved_model" / "saved_model.pb").is_file()
    signature = json.loads((folder / "signature.json").read_text())
    assert signature["inputs"] == {"wide": WIDE, "deep": DEEP}
    assert signature["input_shapes"] == {"wide": [5], "deep": [6]}
    assert signature["model_name"] == "wide_deep_multi_input"
