"""Every registry default is the course's set-up, read off the built model and checked against a
table declared here from the course (../shared/course/keras-course.txt, lines given per row).

A change to a default fails this test until the table, and README's list of departures, say so.
"""
from pathlib import Path

import keras
import numpy as np
import pytest

from tasks.core.params import CLASSIFICATION, REGRESSION, setup
from tasks.model import registry as models
from tasks.model.callbacks import MONITOR

# name -> (course lines, hidden Dense widths, activation, initializer, BatchNorm, dropout layer,
#          optimizer, learning rate); "sgd" in the course is Keras's SGD at 0.01
COURSE = {
    "mlp": ("380-419", [300, 100], "relu", "GlorotUniform", None, None, "SGD", 0.01),
    "deep": ("647-654", [100] * 20, "relu", "GlorotUniform", None, None, "SGD", 0.01),
    "deep_bn_after": ("692-701", [100] * 20, "relu", "GlorotUniform", "after", None, "SGD", 0.01),
    "deep_bn_before": ("705-716", [100] * 20, "relu", "GlorotUniform", "before", None, "SGD", 0.01),
    "selu": ("723-729", [100] * 20, "selu", "GlorotUniform", None, None, "SGD", 0.01),
    "selu_alphadropout": ("742-750", [100] * 20, "selu", "GlorotUniform", None, ("AlphaDropout", 0.5), "SGD", 0.01),
    "dropout": ("752", [100] * 20, "selu", "GlorotUniform", None, ("Dropout", 0.5), "SGD", 0.01),
    "mlp30": ("618-623", [30], "relu", "GlorotUniform", None, None, "SGD", 0.01),
    "wide_deep": ("772-783", [30, 20], "relu", "GlorotUniform", None, None, "SGD", 0.01),
    "wide_deep_subclass": ("788-806", [30, 30], "relu", "GlorotUniform", None, None, "SGD", 0.01),
    "wide_deep_multi_input": ("818-831", [30, 30], "relu", "GlorotUniform", None, None, "SGD", 0.01),
    "wide_deep_multi_output": ("855-863", [30, 30], "relu", "GlorotUniform", None, None, "SGD", 0.01),
}
BEYOND_THE_COURSE = {"cnn"}  # no course set-up to match
# Deliberate departures, each named in README ("Course defaults and where we differ") with its figure
DEPARTURES = {"wide_deep": {"learning_rate": 3e-3}, "wide_deep_subclass": {"learning_rate": 3e-3}}
README = Path(__file__).resolve().parents[3] / "README.md"
SHAPES = {"classification": {"features": (28, 28)}, "regression": {"features": (8,)}}
MULTI_INPUT = {"wide": (5,), "deep": (6,)}  # the course's first 5 and last 6 housing features


def _built(name):
    entry = models.entry(name)
    shapes = MULTI_INPUT if entry.inputs else SHAPES[entry.task]
    return models.build(name, shapes, 10 if entry.task == "classification" else 1)


def _dense_layers(model):
    """Every Dense layer of the model, inside nested layers too (a subclassed model's own)."""
    found, pending = [], list(model.layers)
    while pending:
        layer = pending.pop(0)
        if isinstance(layer, keras.layers.Dense):
            found.append(layer)
        pending[:0] = [sub for sub in getattr(layer, "layers", [])]
    return found


def test_the_table_covers_the_registry():
    assert set(COURSE) | BEYOND_THE_COURSE == set(models.MODELS)


@pytest.mark.parametrize("name", sorted(COURSE))
def test_registry_defaults_are_the_course_set_up(name):
    _, hidden, activation, initializer, batch_norm, dropout, optimizer, learning_rate = COURSE[name]
    model = _built(name)
    dense = _dense_layers(model)
    heads = len(models.entry(name).outputs) or 1
    assert [d.units for d in dense[:-heads]] == hidden
    assert {d.activation.__name__ for d in dense[:-heads]} - {"linear"} <= {activation}
    assert {type(d.kernel_initializer).__name__ for d in dense} == {initializer}
    assert all(d.use_bias for d in dense)  # the course never drops a bias
    kinds = [type(layer).__name__ for layer in model.layers]
    if batch_norm == "after":
        assert kinds[2:4] == ["Dense", "BatchNormalization"] and kinds.count("BatchNormalization") == 20
    elif batch_norm == "before":
        assert kinds[2:5] == ["Dense", "BatchNormalization", "Activation"] and kinds.count("Activation") == 20
    else:
        assert "BatchNormalization" not in kinds
    if dropout:
        layer = next(layer for layer in model.layers if "Dropout" in type(layer).__name__)
        assert (type(layer).__name__, layer.rate) == dropout
    else:
        assert not any("Dropout" in kind for kind in kinds)
    assert type(model.optimizer).__name__ == optimizer
    learning_rate = DEPARTURES.get(name, {}).get("learning_rate", learning_rate)
    assert float(model.optimizer.learning_rate) == pytest.approx(learning_rate)


def test_every_departure_is_named_in_readme():
    departures = README.read_text().split("## Course defaults and where we differ")[1].split("\n## ")[0]
    for name, changed in DEPARTURES.items():
        assert f"`{name}`" in departures and all(f"{value:g}" in departures for value in changed.values())


def test_multi_output_sums_its_two_losses_as_the_course():
    # l. 875-879: the course's total loss 0.9603 is its two heads' 0.4309 + 0.5326
    model = _built("wide_deep_multi_output")
    rng = np.random.default_rng(0)
    x = {"wide": rng.normal(size=(64, 5)), "deep": rng.normal(size=(64, 6))}
    y = rng.normal(size=(64, 1))
    scores = model.evaluate(x, {"main": y, "aux": y}, verbose=0, return_dict=True)
    assert scores["loss"] == pytest.approx(scores["main_loss"] + scores["aux_loss"], rel=1e-5)


def test_fit_settings_are_the_course_ones():
    # l. 419, 540-550: 10 epochs, EarlyStopping(patience=5, min_delta=1e-3); l. 624-628: 100, 5, 1e-2
    assert (CLASSIFICATION.model, CLASSIFICATION.epochs, CLASSIFICATION.batch_size,
            CLASSIFICATION.patience, CLASSIFICATION.min_delta) == ("mlp", 10, 32, 5, 1e-3)
    assert (REGRESSION.model, REGRESSION.epochs, REGRESSION.batch_size,
            REGRESSION.patience, REGRESSION.min_delta) == ("mlp30", 100, 32, 5, 1e-2)
    # EarlyStopping's and ModelCheckpoint's default monitor in the course: the validation loss
    assert MONITOR == ("val_loss", "min")


def test_a_user_table_starts_from_the_table_set_up_and_the_course_s_datasets_from_the_course_s():
    assert setup("classification", None) is CLASSIFICATION and setup("regression", None) is REGRESSION
    for task, model in (("classification", "mlp"), ("regression", "wide_deep")):  # the course's models
        table = setup(task, "my-table.csv")
        assert (table.model, table.batch_size, table.epochs, table.patience, table.min_delta) == (
            model, 32, 300, 20, 0.0)
