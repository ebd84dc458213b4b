"""Every registry model builds, fits one short epoch on a slice of the real data, and reloads."""
import keras
import numpy as np
import pandas as pd
import pytest

from tasks.model import files as model_files
from tasks.model import registry as models
from tasks.model.callbacks import Watch
from tasks.model.registry import model_inputs
from tasks.stages.evaluate import evaluate
from tasks.stages.load import load_table
from tasks.stages.scale import scale
from tasks.stages.train import train
from tasks.store.dataset import Frame, SplitIndex, SplitRule


def _scaled_slice(frame: Frame, sizes=(1_200, 300, 300)) -> Frame:
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(len(frame), sum(sizes), replace=False))
    part = frame.take(rows)
    part.spec = part.spec.replace(rows=None, split=SplitRule())
    labels = np.array(["train"] * sizes[0] + ["valid"] * sizes[1] + ["test"] * sizes[2], dtype=object)
    index = SplitIndex(part.spec, part.y, part.row_id, labels)
    return scale(part, index)[0]


@pytest.fixture(scope="module")
def fashion_slice(fashion):
    return _scaled_slice(fashion)


@pytest.fixture(scope="module")
def housing_slice(housing):
    return _scaled_slice(housing)


def _fit_and_reload(frame, name, tmp_path):
    result = train(frame, name, tmp_path, epochs=1, batch_size=64, seed=0)
    reloaded = model_files.load(result.model_path)
    scores = evaluate(result.model_path, frame.part("test"), name)
    assert result.weights == reloaded.count_params()
    test = frame.part("test")
    predicted = reloaded.predict(model_inputs(test, name), verbose=0)
    if isinstance(predicted, (list, tuple)):  # several heads: in the order the model names them
        predicted = dict(zip(reloaded.output_names, predicted))
    return result, predicted, scores, test


@pytest.mark.parametrize("name", [n if n == "mlp" else pytest.param(n, marks=pytest.mark.slow)  # deep: seconds each
                                  for n, e in models.MODELS.items() if e.task == "classification"])
def test_every_classifier_fits_and_reloads(name, fashion_slice, tmp_path):
    _, predicted, scores, test = _fit_and_reload(fashion_slice, name, tmp_path)
    assert set(scores) == {"loss", "accuracy"} and predicted.shape == (len(test), 10)
    # evaluate's score is the reloaded model's own: its argmax against the labels
    assert scores["accuracy"] == pytest.approx(np.mean(predicted.argmax(axis=1) == test.y), abs=1e-6)


@pytest.mark.parametrize("name", [n for n, e in models.MODELS.items() if e.task == "regression"])
def test_every_regressor_fits_and_reloads(name, housing_slice, tmp_path):
    result, predicted, scores, test = _fit_and_reload(housing_slice, name, tmp_path)
    heads = predicted.values() if isinstance(predicted, dict) else [predicted]
    # the test loss is the reloaded model's MSE (summed over heads; Keras's per-head figures
    # average the batches unweighted, so they drift from the MSE when the last batch is short)
    assert scores["loss"] == pytest.approx(sum(np.mean((p.ravel() - test.y) ** 2) for p in heads), rel=1e-4)
    if name == "wide_deep_multi_output":  # loss per head and combined, in history and on test
        assert {"main_loss", "aux_loss", "val_main_loss", "val_aux_loss"} <= set(result.history.columns)
        assert {"main_loss", "aux_loss"} <= set(scores)


def test_subclass_round_trips_with_identical_predictions(housing_slice, tmp_path):
    keras.utils.set_random_seed(3)
    model = models.build("wide_deep_subclass", {"features": (8,)}, 1)
    train_part = housing_slice.part("train")
    model.fit(train_part.inputs(), train_part.y.astype("float32"), epochs=1, verbose=0)
    before = model.predict(housing_slice.part("test").inputs(), verbose=0)
    model.save(tmp_path / "subclass.keras")
    loaded = keras.models.load_model(tmp_path / "subclass.keras", safe_mode=True,
                                     custom_objects=models.custom_objects())
    assert type(loaded).__name__ == "WideAndDeep" and loaded.get_config()["units"] == 30
    np.testing.assert_array_equal(before, loaded.predict(housing_slice.part("test").inputs(), verbose=0))


def test_multi_input_columns_are_declared_by_name(housing_slice, tmp_path):
    inputs = model_inputs(housing_slice.part("test"), "wide_deep_multi_input")
    features = list(housing_slice.spec.features)
    np.testing.assert_array_equal(inputs["wide"], housing_slice.part("test").X[:, :5])
    np.testing.assert_array_equal(inputs["deep"], housing_slice.part("test").X[:, 2:8])
    assert features[2:8] == list(models.MODELS["wide_deep_multi_input"].inputs["deep"])
    df = pd.DataFrame(housing_slice.X[:50], columns=features).drop(columns=["Latitude"])
    df["y"] = housing_slice.y[:50]
    df.to_csv(tmp_path / "no-latitude.csv", index=False)
    frame, _ = load_table(tmp_path / "no-latitude.csv", "y", "regression")
    with pytest.raises(ValueError, match=r"needs feature columns \['Latitude'\]"):
        model_inputs(frame, "wide_deep_multi_input")


def test_depth_width_activation_override_the_entry():
    model = models.build("mlp", {"features": (28, 28)}, 10, {"depth": 3, "width": 50, "activation": "elu"})
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [d.units for d in dense] == [50, 50, 50, 10]
    assert dense[0].activation.__name__ == "elu"
    deep = models.build("deep", {"features": (28, 28)}, 10)
    assert sum(isinstance(layer, keras.layers.Dense) for layer in deep.layers) == 21
    bn = models.build("deep_bn_before", {"features": (28, 28)}, 10)
    kinds = [type(layer).__name__ for layer in bn.layers[2:5]]
    assert kinds == ["Dense", "BatchNormalization", "Activation"]


def test_classifiers_are_selected_on_validation_loss(fashion_slice, tmp_path):
    # SGD at 0.1 overfits the small slice: the last epoch is not the best one on valid
    result = train(fashion_slice, "mlp", tmp_path, epochs=6, batch_size=64, seed=0, watch=Watch(patience=10),
                   hparams={"learning_rate": 0.1})
    best = keras.models.load_model(result.model_path, safe_mode=True)
    valid = fashion_slice.part("valid")
    scores = best.evaluate(valid.inputs(), valid.y.astype("int64"), verbose=0, return_dict=True)
    assert scores["loss"] == pytest.approx(result.history["val_loss"].min(), abs=1e-5)
