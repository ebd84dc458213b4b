"""The champion exported for serving: a TensorFlow SavedModel that takes the raw features.

The train-only scaler is folded in as a Keras ``Normalization`` layer in front of the model
(mean and variance fixed, nothing adapted), so a serving system feeds the same columns the
table had, in the order ``signature.json`` lists, and needs no project code. Written by
``python -m flows export`` rather than after every training: tracing a SavedModel takes
seconds, and only the champion is served.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from tasks.model import files as model_files
from tasks.model.registry import entry, input_columns
from tasks.serving.drift import expected_columns
from tasks.serving.resolve import Trained
from tasks.stages.scale import StandardScaler
from tasks.store.artifacts import EXPORT, ArtifactStore
from tasks.store.dataset import read_parquet


def export_path(store: ArtifactStore, found: Trained) -> Path:
    return store.root / EXPORT / found.model.sha256


def serving_model(found: Trained):
    """The stored model behind its scaler: raw features in, the model's outputs out."""
    import keras

    scaler = StandardScaler.from_arrow(read_parquet(found.scaler.path))
    model = model_files.load(found.model.path)
    shape, columns = found.spec.feature_shape, expected_columns(found.spec)

    def normalised(name: str, picked: list[int], input_shape: tuple[int, ...]):
        raw = keras.Input(shape=input_shape, name=name)
        mean, std = scaler.mean_[picked].reshape(input_shape), scaler.scale_[picked].reshape(input_shape)
        axis = tuple(range(1, len(input_shape) + 1))
        scaler_layer = keras.layers.Normalization(axis=axis, mean=mean, variance=np.square(std), name=f"{name}_scaler")
        return raw, scaler_layer(raw)

    picked = input_columns(found.model_name, tuple(columns))
    if picked is None:
        raw, scaled = normalised("features", list(range(len(columns))), shape)
        return keras.Model(raw, model(scaled), name="serving")
    pairs = {key: normalised(key, cols, (len(cols),)) for key, cols in picked.items()}
    return keras.Model({k: p[0] for k, p in pairs.items()}, model({k: p[1] for k, p in pairs.items()}),
                       name="serving")


def export(store: ArtifactStore, found: Trained) -> Path:
    """Write the SavedModel and ``signature.json`` (atomically: a folder renamed into place)."""
    target = export_path(store, found)
    if (target / "signature.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:
        serving = serving_model(found)
        serving.export(str(work / "saved_model"), format="tf_saved_model", verbose=False)
        declared = entry(found.model_name).inputs
        signature = {"dataset": found.spec.name, "task": found.spec.task, "model": found.model.sha256,
                     "model_name": found.model_name, "scaler": found.scaler.sha256, "endpoint": "serve",
                     "inputs": {key: list(cols) for key, cols in declared.items()} if declared else
                     {"features": expected_columns(found.spec)},
                     "input_shapes": {key: [len(cols)] for key, cols in declared.items()} if declared else
                     {"features": list(found.spec.feature_shape)}, "dtype": "float32",
                     "outputs": list(entry(found.model_name).outputs or ["output"]),
                     "output": "class probabilities" if found.spec.task == "classification" else "value"}
        (work / "signature.json").write_text(json.dumps(signature, indent=2))
        if (target / "signature.json").is_file():  # another run exported the same model meanwhile
            return target
        if target.exists():  # a half-written export of a killed run
            shutil.rmtree(target)
        os.replace(work, target)
        store.push_folder(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
