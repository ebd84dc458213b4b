"""The model registry: one name -> one builder(input_shapes, n_outputs, hyperparameters).

Every model of the course is an entry here, never a copied script: the deep variants
share one dense-stack builder, the Wide & Deep variants one wiring. A builder returns a
compiled Keras model; ``build`` fills in the entry's defaults (the course's values)
under whatever the caller overrides. Model code uses Keras 3 APIs only (``keras.ops``,
no ``tf.*``), so the registry runs under any Keras backend.

An entry may declare named inputs by feature column (``inputs``) and several heads
(``outputs``, each trained on the target); train/evaluate read those declarations, so
flows pass multi-input and multi-output data without special cases.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

from tasks.params import SCHEDULES

FEATURES = "features"  # the one input of a single-input model


@dataclass(frozen=True)
class ModelEntry:
    task: str  # "classification" or "regression"
    builder: Callable[..., Any]
    defaults: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    inputs: dict[str, tuple[str, ...]] | None = None  # named inputs -> feature columns
    outputs: tuple[str, ...] = ()  # named heads; empty: one unnamed output
    loss_weights: tuple[float, ...] | None = None


# ---- shared pieces ----------------------------------------------------------------------
def _optimizer(name: str, learning_rate: float):
    import keras

    optimizers = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam,
                  "nadam": keras.optimizers.Nadam, "rmsprop": keras.optimizers.RMSprop}
    if name not in optimizers:
        raise ValueError(f"unknown optimizer {name!r}; choose from {sorted(optimizers)}")
    return optimizers[name](learning_rate=learning_rate)


def _compile(model, task: str, hp: dict[str, Any], outputs: tuple[str, ...] = (),
             loss_weights: tuple[float, ...] | None = None):
    loss = "sparse_categorical_crossentropy" if task == "classification" else "mse"
    metrics = ["accuracy"] if task == "classification" else None
    if outputs:
        loss = {name: loss for name in outputs}
        metrics = {name: metrics for name in outputs} if metrics else None
        loss_weights = dict(zip(outputs, loss_weights)) if loss_weights else None
    model.compile(loss=loss, metrics=metrics, loss_weights=loss_weights,
                  optimizer=_optimizer(hp["optimizer"], hp["learning_rate"]))
    return model


def _dense_block(x, hp: dict[str, Any], batch_norm: str | None = None):
    """One hidden layer: Dense, optionally with BatchNormalization after or before the activation."""
    import keras

    init = hp.get("initializer", "glorot_uniform")
    if batch_norm == "before":  # the course drops the bias: BN's beta replaces it
        x = keras.layers.Dense(hp["width"], use_bias=False, kernel_initializer=init)(x)
        x = keras.layers.BatchNormalization()(x)
        return keras.layers.Activation(hp["activation"])(x)
    x = keras.layers.Dense(hp["width"], activation=hp["activation"], kernel_initializer=init)(x)
    return keras.layers.BatchNormalization()(x) if batch_norm == "after" else x


def schedule_of(hp: dict[str, Any]) -> str:
    """The learning-rate schedule by name: "constant" (the course) unless set; an unknown one fails."""
    schedule = hp.get("schedule") or "constant"
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose from {list(SCHEDULES)}")
    return schedule


def learning_rate_at(hp: dict[str, Any], epoch: int, epochs: int) -> float:
    """The learning rate of ``epoch`` (0-based): constant, or a cosine from the model's
    rate down to ~0 at the last epoch (fed to the course's LearningRateScheduler callback).
    A decaying rate is what takes the course MLP past 0.885 in 20 epochs (README)."""
    if schedule_of(hp) == "constant":
        return hp["learning_rate"]
    return hp["learning_rate"] * 0.5 * (1 + math.cos(math.pi * epoch / max(epochs, 1)))


def _widths(hp: dict[str, Any]) -> list[int]:
    return list(hp["hidden"]) if "hidden" in hp else [hp["width"]] * hp["depth"]


# ---- builders ---------------------------------------------------------------------------
def build_dense_stack(input_shapes, n_outputs, hp, task: str, batch_norm: str | None = None):
    """Flatten, hidden Dense layers (``hidden`` widths, or ``depth`` x ``width``), optional
    BatchNormalization and (Alpha)Dropout before the output; the course's MLPs and deep nets."""
    import keras

    inputs = keras.Input(shape=input_shapes[FEATURES], name=FEATURES)
    x = keras.layers.Flatten()(inputs)
    for width in _widths(hp):
        x = _dense_block(x, {**hp, "width": width}, batch_norm)
    if hp.get("dropout"):
        kind = keras.layers.AlphaDropout if hp.get("dropout_kind") == "alpha" else keras.layers.Dropout
        x = kind(hp["dropout"])(x)
    activation = "softmax" if task == "classification" else None
    outputs = keras.layers.Dense(n_outputs, activation=activation)(x)
    return _compile(keras.Model(inputs, outputs), task, hp)


def build_cnn(input_shapes, n_outputs, hp):
    """Beyond the course: a small CNN (two conv blocks, a dense head), for >= 0.925 on Fashion-MNIST."""
    import keras

    inputs = keras.Input(shape=input_shapes[FEATURES], name=FEATURES)
    x = keras.layers.Reshape((*input_shapes[FEATURES], 1))(inputs)
    for filters in hp["filters"]:
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
        x = keras.layers.Dropout(0.25)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(hp["width"], activation="relu")(x)
    x = keras.layers.Dropout(hp["dropout"])(x)
    outputs = keras.layers.Dense(n_outputs, activation="softmax")(x)
    return _compile(keras.Model(inputs, outputs), "classification", hp)


def _wide_deep_graph(wide, deep, hp):
    """Deep path: two Dense layers on ``deep``; the head sees concat(wide, deep path)."""
    import keras

    hidden = deep
    for _ in range(2):
        hidden = keras.layers.Dense(hp["width"], activation=hp["activation"])(hidden)
    concat = keras.layers.Concatenate()([wide, hidden])
    return hidden, keras.layers.Dense(1, name="main")(concat)


def build_wide_deep(input_shapes, n_outputs, hp):
    """The course's Wide & Deep, functional API: one input feeds both paths."""
    import keras

    inputs = keras.Input(shape=input_shapes[FEATURES], name=FEATURES)
    _, output = _wide_deep_graph(inputs, inputs, hp)
    return _compile(keras.Model(inputs, output), "regression", hp)


def build_wide_deep_multi(input_shapes, n_outputs, hp, entry: "ModelEntry"):
    """Wide & Deep with named wide and deep inputs; with two declared outputs, an auxiliary
    head on the deep path (the course's multi-output model)."""
    import keras

    wide = keras.Input(shape=input_shapes["wide"], name="wide")
    deep = keras.Input(shape=input_shapes["deep"], name="deep")
    hidden, main = _wide_deep_graph(wide, deep, hp)
    outputs = {"main": main}
    if "aux" in entry.outputs:
        outputs["aux"] = keras.layers.Dense(1, name="aux")(hidden)
    model = keras.Model({"wide": wide, "deep": deep}, outputs if entry.outputs else main)
    return _compile(model, "regression", hp, entry.outputs, entry.loss_weights)


@lru_cache(maxsize=1)
def _wide_and_deep_class():
    import keras

    @keras.saving.register_keras_serializable(package="keras_flows")
    class WideAndDeep(keras.Model):
        """The course's Wide & Deep written as a subclass; ``get_config`` makes it saveable."""

        def __init__(self, units: int = 30, activation: str = "relu", **kwargs):
            super().__init__(**kwargs)
            self.units, self.activation = units, activation
            self.hidden1 = keras.layers.Dense(units, activation=activation)
            self.hidden2 = keras.layers.Dense(units, activation=activation)
            self.main_output = keras.layers.Dense(1)

        def call(self, inputs):
            hidden = self.hidden2(self.hidden1(inputs))
            return self.main_output(keras.ops.concatenate([inputs, hidden], axis=-1))

        def get_config(self):
            return {**super().get_config(), "units": self.units, "activation": self.activation}

    return WideAndDeep


def build_wide_deep_subclass(input_shapes, n_outputs, hp):
    import keras

    model = _wide_and_deep_class()(units=hp["width"], activation=hp["activation"])
    model(keras.ops.zeros((1, *input_shapes[FEATURES])))  # create the weights before compile
    return _compile(model, "regression", hp)


def custom_objects() -> dict[str, Any]:
    """Classes a saved model may need; pass to ``keras.models.load_model``."""
    cls = _wide_and_deep_class()
    return {"keras_flows>WideAndDeep": cls, "WideAndDeep": cls}


# ---- the registry -----------------------------------------------------------------------
_SGD = {"optimizer": "sgd", "learning_rate": 1e-2}
_DEEP = {**_SGD, "depth": 20, "width": 100, "activation": "relu"}
_HOUSING_DEEP_INPUTS = ("AveRooms", "AveBedrms", "Population", "AveOccup", "Latitude", "Longitude")
_HOUSING_WIDE_INPUTS = ("MedInc", "HouseAge", "AveRooms", "AveBedrms", "Population")
_WIDE_DEEP = {"width": 30, "activation": "relu", "optimizer": "sgd", "learning_rate": 3e-3}  # 1e-2 diverges


def _classifier(batch_norm=None):
    return lambda shapes, n, hp: build_dense_stack(shapes, n, hp, "classification", batch_norm)


MODELS: dict[str, ModelEntry] = {
    "mlp": ModelEntry("classification", _classifier(), {"hidden": [300, 100], "activation": "relu", **_SGD},
                      "Flatten, Dense 300 relu, Dense 100 relu, Dense softmax; SGD"),
    "deep": ModelEntry("classification", _classifier(), _DEEP, "20 x Dense(100, relu): vanishing gradients"),
    # BatchNorm is what lets a deep net train at a higher learning rate: 0.05 (0.01 trails `deep`)
    "deep_bn_after": ModelEntry("classification", _classifier("after"), {**_DEEP, "learning_rate": 0.05},
                                "20 x (Dense relu -> BatchNormalization); SGD 0.05"),
    "deep_bn_before": ModelEntry("classification", _classifier("before"), {**_DEEP, "learning_rate": 0.05},
                                 "20 x (Dense -> BatchNormalization -> relu); SGD 0.05"),
    "selu": ModelEntry("classification", _classifier(),
                       {**_DEEP, "activation": "selu", "initializer": "lecun_normal"},
                       "20 x Dense(100, selu, lecun_normal): self-normalising"),
    "selu_alphadropout": ModelEntry("classification", _classifier(),
                                    {**_DEEP, "activation": "selu", "initializer": "lecun_normal",
                                     "dropout": 0.5, "dropout_kind": "alpha"},
                                    "selu + AlphaDropout(0.5) before the output"),
    "dropout": ModelEntry("classification", _classifier(), {**_DEEP, "dropout": 0.5},
                          "20 x Dense(100, relu) + Dropout(0.5) before the output"),
    "cnn": ModelEntry("classification", build_cnn,
                      {"filters": [32, 64], "width": 128, "dropout": 0.5, "optimizer": "adam",
                       "learning_rate": 1e-3, "schedule": "cosine"},  # constant: 0.922 after 15 epochs
                      "2 x (Conv-BN-Conv-MaxPool-Dropout), Dense 128, Dropout 0.5; Adam, cosine decay"),
    "mlp30": ModelEntry("regression", lambda s, n, hp: build_dense_stack(s, n, hp, "regression"),
                        {"hidden": [30], "activation": "relu", **_SGD}, "Dense 30 relu, Dense 1; MSE; SGD"),
    "wide_deep": ModelEntry("regression", build_wide_deep, _WIDE_DEEP,
                            "Wide & Deep, functional: concat(input, Dense30-Dense30) -> Dense 1"),
    "wide_deep_subclass": ModelEntry("regression", build_wide_deep_subclass, _WIDE_DEEP,
                                     "the same Wide & Deep as a keras.Model subclass"),
    "wide_deep_multi_input": ModelEntry(
        "regression", lambda s, n, hp: build_wide_deep_multi(s, n, hp, MODELS["wide_deep_multi_input"]),
        _WIDE_DEEP, "wide input: features 0-4, deep input: features 2-7",
        inputs={"wide": _HOUSING_WIDE_INPUTS, "deep": _HOUSING_DEEP_INPUTS}),
    "wide_deep_multi_output": ModelEntry(
        "regression", lambda s, n, hp: build_wide_deep_multi(s, n, hp, MODELS["wide_deep_multi_output"]),
        _WIDE_DEEP, "multi-input + an auxiliary head on the deep path (loss weights 0.9 / 0.1)",
        inputs={"wide": _HOUSING_WIDE_INPUTS, "deep": _HOUSING_DEEP_INPUTS},
        outputs=("main", "aux"), loss_weights=(0.9, 0.1)),
}


def entry(name: str, task: str | None = None) -> ModelEntry:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; registered: {', '.join(sorted(MODELS))}")
    found = MODELS[name]
    if task is not None and found.task != task:
        choices = sorted(n for n, e in MODELS.items() if e.task == task)
        raise ValueError(f"model {name!r} is a {found.task} model; for {task} use one of {choices}")
    return found


def hyperparameters(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The entry's defaults with the caller's non-None overrides on top."""
    hp = {**entry(name).defaults, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    if overrides and (overrides.get("depth") or overrides.get("width")) and "hidden" in hp:
        listed = hp.pop("hidden")  # an explicit depth/width replaces the entry's listed widths
        hp.setdefault("depth", len(listed))
        hp.setdefault("width", listed[0])
    return hp


def input_shapes(name: str, feature_names: tuple[str, ...], feature_shape: tuple[int, ...]
                 ) -> dict[str, tuple[int, ...]]:
    """Shape of each named input: declared columns for multi-input models, else all features."""
    declared = entry(name).inputs
    if declared is None:
        return {FEATURES: feature_shape}
    missing = sorted({c for cols in declared.values() for c in cols} - set(feature_names))
    if missing:
        raise ValueError(f"model {name!r} needs feature columns {missing}, which the data lacks")
    return {key: (len(cols),) for key, cols in declared.items()}


def build(name: str, shapes: dict[str, tuple[int, ...]], n_outputs: int, overrides: dict[str, Any] | None = None):
    return entry(name).builder(shapes, n_outputs, hyperparameters(name, overrides))
