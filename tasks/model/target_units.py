"""A regressor that learns a standardised target and answers in the target's own units.

A target measured in hundreds (a disease score with mean 152 and spread 77) makes the squared
error, and so each gradient step, thousands of times larger than the course's housing target in
units of $100,000: at the default learning rate the training diverges. As scikit-learn's
``TransformedTargetRegressor`` with a ``StandardScaler`` does, the network learns
``(y - mean) / scale`` (the train rows' mean and standard deviation, measured by the scale stage);
the stored model then ends, after each head, in a ``Rescaling`` layer computing ``z * scale +
mean``, so its evaluation, predictions, export and reports are all in the target's own units and
nothing downstream needs to know. The validation losses that chose the epoch stay in standardised
units (the training history says so).
"""
from __future__ import annotations

from typing import Any

import numpy as np


def standardised(y: np.ndarray, scaling: tuple[float, float]) -> np.ndarray:
    mean, scale = scaling
    return ((np.asarray(y, np.float64) - mean) / scale).astype(np.float32)


def in_target_units(net: Any, shapes: dict[str, tuple[int, ...]], scaling: tuple[float, float],
                    heads: tuple[str, ...]):
    """``net`` (any Keras model: sequential, functional or subclassed) followed by ``z * scale +
    mean`` on each output, compiled with ``net``'s loss and metrics for evaluation."""
    import keras

    mean, scale = scaling
    names = list(shapes)
    inputs = {name: keras.Input(shape=shape, name=name) for name, shape in shapes.items()}
    out = net(inputs if len(names) > 1 else inputs[names[0]])

    def rescaled(value, name: str):
        return keras.layers.Rescaling(scale, offset=mean, name=name)(value)

    if heads:
        out = {head: rescaled(out[head], f"{head}_in_target_units") for head in heads}
    else:
        out = rescaled(out, "in_target_units")
    model = keras.Model(inputs if len(names) > 1 else inputs[names[0]], out, name=f"{net.name}_in_target_units")
    model.compile_from_config(net.get_compile_config())
    return model


def training_arrays(part: Any, model: str, scaling: tuple[float, float] | None) -> tuple[Any, Any]:
    """A frame's rows as a model's inputs and targets, the target standardised where the spec says."""
    import dataclasses

    from tasks.model import registry as models

    part = dataclasses.replace(part, y=standardised(part.y, scaling)) if scaling else part
    return models.model_inputs(part, model), models.model_targets(part, model)
