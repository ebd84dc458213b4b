"""The model registry: one name -> one builder(input_shape, n_outputs, hyperparameters).

Every model of the course is an entry here, never a copied script. A builder returns
a compiled Keras model; ``build`` fills in the entry's defaults (the course's values)
under whatever the caller overrides.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class ModelEntry:
    task: str  # "classification" or "regression"
    builder: Callable[..., Any]
    defaults: dict[str, Any] = field(default_factory=dict)
    summary: str = ""


def _optimizer(name: str, learning_rate: float):
    import keras

    optimizers = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam,
                  "nadam": keras.optimizers.Nadam, "rmsprop": keras.optimizers.RMSprop}
    if name not in optimizers:
        raise ValueError(f"unknown optimizer {name!r}; choose from {sorted(optimizers)}")
    return optimizers[name](learning_rate=learning_rate)


def _compile(model, task: str, hp: dict[str, Any]):
    if task == "classification":
        model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                      optimizer=_optimizer(hp["optimizer"], hp["learning_rate"]))
    else:
        model.compile(loss="mse", optimizer=_optimizer(hp["optimizer"], hp["learning_rate"]))
    return model


def _dense_stack(input_shape, n_outputs, hp, output_activation):
    import keras

    layers = [keras.Input(shape=input_shape), keras.layers.Flatten()]
    layers += [keras.layers.Dense(width, activation=hp["activation"]) for width in hp["hidden"]]
    layers.append(keras.layers.Dense(n_outputs, activation=output_activation))
    return keras.Sequential(layers)


def build_mlp_classifier(input_shape, n_outputs, hp):
    """The course's Fashion-MNIST MLP: Flatten, Dense 300 relu, Dense 100 relu, Dense softmax."""
    return _compile(_dense_stack(input_shape, n_outputs, hp, "softmax"), "classification", hp)


def build_mlp_regressor(input_shape, n_outputs, hp):
    """The course's housing MLP: Dense 30 relu, Dense 1."""
    return _compile(_dense_stack(input_shape, n_outputs, hp, None), "regression", hp)


MODELS: dict[str, ModelEntry] = {
    "mlp": ModelEntry("classification", build_mlp_classifier,
                      {"hidden": [300, 100], "activation": "relu", "optimizer": "sgd", "learning_rate": 1e-2},
                      "Flatten, Dense 300 relu, Dense 100 relu, Dense softmax; SGD"),
    "mlp30": ModelEntry("regression", build_mlp_regressor,
                        {"hidden": [30], "activation": "relu", "optimizer": "sgd", "learning_rate": 1e-2},
                        "Dense 30 relu, Dense 1; MSE; SGD"),
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
    return {**entry(name).defaults, **{k: v for k, v in (overrides or {}).items() if v is not None}}


def build(name: str, input_shape: tuple[int, ...], n_outputs: int, overrides: dict[str, Any] | None = None):
    return entry(name).builder(input_shape, n_outputs, hyperparameters(name, overrides))
