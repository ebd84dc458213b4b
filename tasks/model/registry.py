"""The model registry: one name -> one builder and its defaults, the course's set-up.

Every model of the course is an entry here, never a copied script; the builders live in
``tasks/model/architectures.py``. ``build`` fills in the entry's defaults under whatever the
caller overrides. An entry may declare named inputs by feature column (``inputs``) and
several heads (``outputs``, each trained on the target); ``model_inputs`` and
``model_targets`` read those declarations, so flows pass multi-input and multi-output data
without special cases.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tasks.core.errors import DataError, OptionError
from tasks.model.architectures import (
    FEATURES,
    build_cnn,
    build_dense_stack,
    build_wide_deep,
    build_wide_deep_multi,
    build_wide_deep_subclass,
    custom_objects,
    learning_rate_at,
    schedule_of,
)
from tasks.store.dataset import DatasetSpec, Frame

__all__ = ["MODELS", "ModelEntry", "build", "custom_objects", "entry", "hyperparameters", "input_shapes",
           "learning_rate_at", "model_inputs", "model_targets", "n_outputs", "schedule_of"]


@dataclass(frozen=True)
class ModelEntry:
    task: str  # "classification" or "regression"
    builder: Callable[..., Any]
    defaults: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    inputs: dict[str, tuple[str, ...]] | None = None  # named inputs -> feature columns
    outputs: tuple[str, ...] = ()  # named heads; empty: one unnamed output


# ---- the registry -----------------------------------------------------------------------
# Each entry's defaults are the course's set-up for that experiment (keras-course.txt; the
# test tests/tasks/test_course_setups.py holds the declared table). `optimizer="sgd"` in the
# course is Keras's SGD at its default learning rate, 0.01.
_SGD = {"optimizer": "sgd", "learning_rate": 1e-2}
_DEEP = {**_SGD, "depth": 20, "width": 100, "activation": "relu"}
_SELU = {**_DEEP, "activation": "selu"}  # the course keeps Dense's default initializer (glorot_uniform)
_HOUSING_DEEP_INPUTS = ("AveRooms", "AveBedrms", "Population", "AveOccup", "Latitude", "Longitude")
_HOUSING_WIDE_INPUTS = ("MedInc", "HouseAge", "AveRooms", "AveBedrms", "Population")
_WIDE_DEEP = {"hidden": [30, 30], "activation": "relu", **_SGD}
# A departure (README): the single-input Wide & Deep feeds every raw feature, AveOccup's outliers
# too, straight to the output; at the course's 0.01 it diverges (NaN by epoch 6 at seed 42).
_WIDE_ALL_FEATURES_LR = 3e-3


def _classifier(batch_norm=None):
    return lambda shapes, n, hp: build_dense_stack(shapes, n, hp, "classification", batch_norm)


MODELS: dict[str, ModelEntry] = {
    "mlp": ModelEntry("classification", _classifier(), {"hidden": [300, 100], "activation": "relu", **_SGD},
                      "Flatten, Dense 300 relu, Dense 100 relu, Dense softmax; SGD"),
    "deep": ModelEntry("classification", _classifier(), _DEEP, "20 x Dense(100, relu): vanishing gradients"),
    "deep_bn_after": ModelEntry("classification", _classifier("after"), _DEEP,
                                "20 x (Dense relu -> BatchNormalization); SGD"),
    "deep_bn_before": ModelEntry("classification", _classifier("before"), _DEEP,
                                 "20 x (Dense -> BatchNormalization -> relu); SGD"),
    "selu": ModelEntry("classification", _classifier(), _SELU, "20 x Dense(100, selu): self-normalising"),
    "selu_alphadropout": ModelEntry("classification", _classifier(),
                                    {**_SELU, "dropout": 0.5, "dropout_kind": "alpha"},
                                    "selu + AlphaDropout(0.5) before the output"),
    "dropout": ModelEntry("classification", _classifier(), {**_SELU, "dropout": 0.5},
                          "the selu net with plain Dropout(0.5) before the output"),
    "cnn": ModelEntry("classification", build_cnn,
                      {"filters": [32, 64], "width": 128, "dropout": 0.5, "optimizer": "adam",
                       "learning_rate": 1e-3, "schedule": "cosine"},  # constant: 0.922 after 15 epochs
                      "2 x (Conv-BN-Conv-MaxPool-Dropout), Dense 128, Dropout 0.5; Adam, cosine decay"),
    "mlp30": ModelEntry("regression", lambda s, n, hp: build_dense_stack(s, n, hp, "regression"),
                        {"hidden": [30], "activation": "relu", **_SGD}, "Dense 30 relu, Dense 1; MSE; SGD"),
    "wide_deep": ModelEntry("regression", build_wide_deep,
                            {**_WIDE_DEEP, "hidden": [30, 20], "learning_rate": _WIDE_ALL_FEATURES_LR},
                            "Wide & Deep, functional: concat(input, Dense30-Dense20) -> Dense 1"),
    "wide_deep_subclass": ModelEntry("regression", build_wide_deep_subclass,
                                     {"width": 30, "activation": "relu", **_SGD,
                                      "learning_rate": _WIDE_ALL_FEATURES_LR},
                                     "Wide & Deep as a keras.Model subclass: concat(input, Dense30-Dense30)"),
    "wide_deep_multi_input": ModelEntry(
        "regression", build_wide_deep_multi,
        _WIDE_DEEP, "wide input: features 0-4, deep input: features 2-7",
        inputs={"wide": _HOUSING_WIDE_INPUTS, "deep": _HOUSING_DEEP_INPUTS}),
    "wide_deep_multi_output": ModelEntry(
        "regression", lambda s, n, hp: build_wide_deep_multi(s, n, hp, ("main", "aux")),
        _WIDE_DEEP, "multi-input + an auxiliary head on the deep path (losses summed, as the course)",
        inputs={"wide": _HOUSING_WIDE_INPUTS, "deep": _HOUSING_DEEP_INPUTS}, outputs=("main", "aux")),
}


def entry(name: str, task: str | None = None) -> ModelEntry:
    if name not in MODELS:
        raise OptionError(f"unknown model {name!r}; registered: {', '.join(sorted(MODELS))}")
    found = MODELS[name]
    if task is not None and found.task != task:
        choices = sorted(n for n, e in MODELS.items() if e.task == task)
        raise OptionError(f"model {name!r} is a {found.task} model; for {task} use one of {choices}")
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
        raise DataError(f"model {name!r} needs feature columns {missing}, which the data lacks")
    return {key: (len(cols),) for key, cols in declared.items()}


def build(name: str, shapes: dict[str, tuple[int, ...]], n_outputs: int, overrides: dict[str, Any] | None = None,
          steps_per_execution: int = 1, seed: int | None = None):
    """The entry's network, compiled. ``steps_per_execution`` is a fit setting (how many batches
    one compiled call runs), handed to compile but not one of the model's hyperparameters;
    ``seed`` seeds every random initializer and dropout layer (None: Keras's own defaults)."""
    hp = hyperparameters(name, overrides)
    _check_keras_names(hp)
    return entry(name).builder(shapes, n_outputs, {**hp, "steps_per_execution": steps_per_execution, "seed": seed})


def _check_keras_names(hp: dict[str, Any]) -> None:
    """An activation or initializer Keras does not know is the option's fault (exit 2), named."""
    import keras

    for option, known, examples in (("activation", keras.activations.get, "relu, selu, elu"),
                                    ("initializer", keras.initializers.get, "he_normal, lecun_normal")):
        if hp.get(option):
            try:
                known(hp[option])
            except ValueError:
                raise OptionError(f"--{option} {hp[option]!r}: Keras has no {option} of that name "
                                  f"(e.g. {examples})") from None


def n_outputs(spec: DatasetSpec, y: np.ndarray | float) -> int:
    """Units of the output layer: one value, or one probability per class (the spec's, or
    labels 0 to the largest in ``y``)."""
    if spec.task == "regression":
        return 1
    return len(spec.classes) if spec.classes else int(np.max(y)) + 1


def input_columns(model: str, features: tuple[str, ...]) -> dict[str, list[int]] | None:
    """The positions of the feature columns each declared input takes (None: one input of all)."""
    declared = entry(model).inputs
    if declared is None:
        return None
    input_shapes(model, features, ())  # names the missing columns
    column = {name: i for i, name in enumerate(features)}
    return {key: [column[c] for c in cols] for key, cols in declared.items()}


def model_inputs(frame: Frame, model: str) -> np.ndarray | dict[str, np.ndarray]:
    """The arrays a registry model takes: all features, or its declared named inputs."""
    picked = input_columns(model, tuple(frame.spec.features))
    return frame.inputs() if picked is None else {key: frame.X[:, cols] for key, cols in picked.items()}


def model_targets(frame: Frame, model: str) -> np.ndarray | dict[str, np.ndarray]:
    """The target, once per declared head (the course trains both heads on the same target)."""
    y = frame.y.astype(np.float32 if frame.spec.task == "regression" else np.int64)
    heads = entry(model).outputs
    return {head: y for head in heads} if heads else y


def main_output(out: Any, model: str) -> np.ndarray:
    """What ``predict`` gave for the model's main head: the first one declared, when it has several
    (Keras returns them as a dict by name, or a list in order)."""
    heads = entry(model).outputs
    if isinstance(out, dict):
        out = out[heads[0]]
    elif isinstance(out, (list, tuple)):
        out = out[0]
    return np.asarray(out)
