"""The course's network architectures as Keras 3 builders: builder(input_shapes, n_outputs, hp).

The deep variants share one dense-stack builder, the Wide & Deep variants one wiring; each
returns a compiled model. Model code uses Keras 3 APIs only (``keras.ops``, no ``tf.*``), so
it runs under any Keras backend. Which builder and which defaults make a named model is the
registry's business (``tasks/model/registry.py``).

Every random initializer and dropout layer gets its seed from ``hp["seed"]`` (``Seeds``): Keras
would draw a layer's default seed from Python's global ``random``, which other threads share
(Prefect's websocket keepalive draws from it), so a seeded build was not always the same model.
"""
from __future__ import annotations

import inspect
import math
import random
from functools import lru_cache
from typing import Any

from tasks.core.errors import OptionError
from tasks.core.params import SCHEDULES

FEATURES = "features"  # the one input of a single-input model


# ---- shared pieces ----------------------------------------------------------------------
class Seeds:
    """The seeds of one model's random layers, drawn in build order from the training's seed
    (None: Keras's own default seeds, as a plain ``keras.layers.Dense`` takes)."""

    def __init__(self, seed: int | None):
        self._random = None if seed is None else random.Random(seed)

    def __call__(self) -> int | None:
        return None if self._random is None else self._random.randint(1, 10**9)

    def initializer(self, name: str | None = None):
        """Keras's initializer of that name (default glorot_uniform, Dense's), with the next seed."""
        import keras

        kind = type(keras.initializers.get(name or "glorot_uniform"))
        return kind(seed=self()) if "seed" in inspect.signature(kind).parameters else kind()


def _optimizer(name: str, learning_rate: float):
    import keras

    optimizers = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam,
                  "nadam": keras.optimizers.Nadam, "rmsprop": keras.optimizers.RMSprop}
    if name not in optimizers:
        raise OptionError(f"unknown optimizer {name!r}; choose from {sorted(optimizers)}")
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
                  optimizer=_optimizer(hp["optimizer"], hp["learning_rate"]),
                  steps_per_execution=hp.get("steps_per_execution", 1))
    return model


def _dense_block(x, hp: dict[str, Any], seeds: Seeds, batch_norm: str | None = None):
    """One hidden layer: Dense, optionally with BatchNormalization after or before the activation."""
    import keras

    init = seeds.initializer(hp.get("initializer"))
    if batch_norm == "before":  # the course keeps Dense's bias here (BN's beta makes it redundant)
        x = keras.layers.Dense(hp["width"], kernel_initializer=init)(x)
        x = keras.layers.BatchNormalization()(x)
        return keras.layers.Activation(hp["activation"])(x)
    x = keras.layers.Dense(hp["width"], activation=hp["activation"], kernel_initializer=init)(x)
    return keras.layers.BatchNormalization()(x) if batch_norm == "after" else x


def schedule_of(hp: dict[str, Any]) -> str:
    """The learning-rate schedule by name: "constant" (the course) unless set; an unknown one fails."""
    schedule = hp.get("schedule") or "constant"
    if schedule not in SCHEDULES:
        raise OptionError(f"unknown schedule {schedule!r}; choose from {list(SCHEDULES)}")
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

    seeds = Seeds(hp.get("seed"))
    inputs = keras.Input(shape=input_shapes[FEATURES], name=FEATURES)
    x = keras.layers.Flatten()(inputs)
    for width in _widths(hp):
        x = _dense_block(x, {**hp, "width": width}, seeds, batch_norm)
    if hp.get("dropout"):
        kind = keras.layers.AlphaDropout if hp.get("dropout_kind") == "alpha" else keras.layers.Dropout
        x = kind(hp["dropout"], seed=seeds())(x)
    activation = "softmax" if task == "classification" else None
    outputs = keras.layers.Dense(n_outputs, activation=activation, kernel_initializer=seeds.initializer())(x)
    return _compile(keras.Model(inputs, outputs), task, hp)


def build_cnn(input_shapes, n_outputs, hp):
    """Beyond the course: a small CNN (two conv blocks, a dense head), for >= 0.925 on Fashion-MNIST."""
    import keras

    seeds = Seeds(hp.get("seed"))
    inputs = keras.Input(shape=input_shapes[FEATURES], name=FEATURES)
    x = keras.layers.Reshape((*input_shapes[FEATURES], 1))(inputs)

    def conv(filters: int):
        return keras.layers.Conv2D(filters, 3, padding="same", activation="relu",
                                   kernel_initializer=seeds.initializer())

    for filters in hp["filters"]:
        x = conv(filters)(x)
        x = keras.layers.BatchNormalization()(x)
        x = conv(filters)(x)
        x = keras.layers.MaxPooling2D()(x)
        x = keras.layers.Dropout(0.25, seed=seeds())(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(hp["width"], activation="relu", kernel_initializer=seeds.initializer())(x)
    x = keras.layers.Dropout(hp["dropout"], seed=seeds())(x)
    outputs = keras.layers.Dense(n_outputs, activation="softmax", kernel_initializer=seeds.initializer())(x)
    return _compile(keras.Model(inputs, outputs), "classification", hp)


def _wide_deep_graph(wide, deep, hp, seeds: Seeds):
    """Deep path: the hidden Dense layers on ``deep``; the head sees concat(wide, deep path)."""
    import keras

    hidden = deep
    for width in _widths(hp):
        hidden = keras.layers.Dense(width, activation=hp["activation"], kernel_initializer=seeds.initializer())(hidden)
    concat = keras.layers.Concatenate()([wide, hidden])
    return hidden, keras.layers.Dense(1, name="main", kernel_initializer=seeds.initializer())(concat)


def build_wide_deep(input_shapes, n_outputs, hp):
    """The course's Wide & Deep, functional API: one input feeds both paths."""
    import keras

    inputs = keras.Input(shape=input_shapes[FEATURES], name=FEATURES)
    _, output = _wide_deep_graph(inputs, inputs, hp, Seeds(hp.get("seed")))
    return _compile(keras.Model(inputs, output), "regression", hp)


def build_wide_deep_multi(input_shapes, n_outputs, hp, outputs: tuple[str, ...] = (),
                          loss_weights: tuple[float, ...] | None = None):
    """Wide & Deep with named wide and deep inputs; with two declared outputs, an auxiliary
    head on the deep path (the course's multi-output model)."""
    import keras

    seeds = Seeds(hp.get("seed"))
    wide = keras.Input(shape=input_shapes["wide"], name="wide")
    deep = keras.Input(shape=input_shapes["deep"], name="deep")
    hidden, main = _wide_deep_graph(wide, deep, hp, seeds)
    heads = {"main": main}
    if "aux" in outputs:
        heads["aux"] = keras.layers.Dense(1, name="aux", kernel_initializer=seeds.initializer())(hidden)
    model = keras.Model({"wide": wide, "deep": deep}, heads if outputs else main)
    return _compile(model, "regression", hp, outputs, loss_weights)


@lru_cache(maxsize=1)
def _wide_and_deep_class():
    import keras

    @keras.saving.register_keras_serializable(package="keras_flows")
    class WideAndDeep(keras.Model):
        """The course's Wide & Deep written as a subclass; ``get_config`` makes it saveable."""

        def __init__(self, units: int = 30, activation: str = "relu", seed: int | None = None, **kwargs):
            super().__init__(**kwargs)
            self.units, self.activation, self.seed = units, activation, seed
            seeds = Seeds(seed)
            self.hidden1 = keras.layers.Dense(units, activation=activation, kernel_initializer=seeds.initializer())
            self.hidden2 = keras.layers.Dense(units, activation=activation, kernel_initializer=seeds.initializer())
            self.main_output = keras.layers.Dense(1, kernel_initializer=seeds.initializer())

        def call(self, inputs):
            hidden = self.hidden2(self.hidden1(inputs))
            return self.main_output(keras.ops.concatenate([inputs, hidden], axis=-1))

        def get_config(self):
            return {**super().get_config(), "units": self.units, "activation": self.activation, "seed": self.seed}

    return WideAndDeep


def build_wide_deep_subclass(input_shapes, n_outputs, hp):
    import keras

    model = _wide_and_deep_class()(units=hp["width"], activation=hp["activation"], seed=hp.get("seed"))
    model(keras.ops.zeros((1, *input_shapes[FEATURES])))  # create the weights before compile
    return _compile(model, "regression", hp)


def custom_objects() -> dict[str, Any]:
    """Classes a saved model may need; pass to ``keras.models.load_model``."""
    cls = _wide_and_deep_class()
    return {"keras_flows>WideAndDeep": cls, "WideAndDeep": cls}
