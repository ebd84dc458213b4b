"""The champion exported for serving: a TensorFlow SavedModel that takes the raw features.

The train-only scaler is folded in as a Keras ``Normalization`` layer in front of the model
(mean and variance fixed, nothing adapted), so a serving system feeds the same columns the
table had, in the order ``signature.json`` lists, and needs no project code. A table's
categorical columns are string inputs of their own, one-hot encoded by training's
``StringLookup`` vocabulary; where training imputed missing values, a NaN number becomes the
train median and an empty string the most frequent category, as ``predict`` does. Written by
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
from tasks.serving.drift import expected_columns, scaler_features
from tasks.serving.resolve import Trained
from tasks.stages.categories import Vocabulary
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
    if _takes_table_inputs(found):
        return _table_serving_model(found, scaler, model)
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


def _takes_table_inputs(found: Trained) -> bool:
    """Whether the export takes a user's table's raw inputs (text columns, cells to fill, columns
    training dropped) rather than the scaled data's columns as they are."""
    return found.vocabulary is not None or found.spec.drop_constant or found.spec.missing == "impute"


def _table_serving_model(found: Trained, scaler: StandardScaler, model):
    """A user's table's model: its numeric columns as one input (missing values filled as training
    did, then normalised), each categorical column as a string input (one-hot by its vocabulary),
    joined in the scaled data's column order, then split into the model's declared inputs."""
    import keras

    from tasks.serving.serving_layers import FillMissing, FillMissingText

    numeric = scaler_features(found)
    raw = {"features": keras.Input(shape=(len(numeric),), name="features")}
    parts = [keras.layers.Normalization(mean=scaler.mean_, variance=np.square(scaler.scale_), name="scaler")(
        FillMissing(getattr(scaler, "fill_", None))(raw["features"]))]
    if found.vocabulary is not None:
        vocabulary = Vocabulary.from_arrow(read_parquet(found.vocabulary.path))
        for j, column in enumerate(vocabulary.columns):
            raw[column] = keras.Input(shape=(1,), dtype="string", name=column)
            parts.append(vocabulary.layer(j)(FillMissingText(vocabulary.fills[j])(raw[column])))
    joined = keras.layers.Concatenate(name="joined")(parts) if len(parts) > 1 else parts[0]
    picked = input_columns(found.model_name, tuple(found.inputs.features))
    inputs = joined if picked is None else {key: keras.ops.take(joined, cols, axis=1) for key, cols in picked.items()}
    return keras.Model(raw, model(inputs), name="serving")


def signature_inputs(found: Trained) -> tuple[dict[str, list[str]], dict[str, list[int]], dict[str, str]]:
    """The exported model's inputs: their columns, shapes and dtypes, as ``signature.json`` lists them."""
    declared = entry(found.model_name).inputs
    if _takes_table_inputs(found):
        numeric = scaler_features(found)
        text = list(found.spec.categorical)
        return ({"features": numeric, **{c: [c] for c in text}}, {"features": [len(numeric)], **{c: [1] for c in text}},
                {"features": "float32", **{c: "string" for c in text}})
    if declared:
        return ({k: list(v) for k, v in declared.items()}, {k: [len(v)] for k, v in declared.items()},
                dict.fromkeys(declared, "float32"))
    return ({"features": expected_columns(found.spec)}, {"features": list(found.spec.feature_shape)},
            {"features": "float32"})


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
        inputs, shapes, dtypes = signature_inputs(found)
        signature = {"dataset": found.spec.name, "task": found.spec.task, "model": found.model.sha256,
                     "model_name": found.model_name, "scaler": found.scaler.sha256, "endpoint": "serve",
                     **({"vocabulary": found.vocabulary.sha256} if found.vocabulary else {}),
                     **({"labels": list(found.spec.class_names)} if found.spec.class_names else {}),
                     "inputs": inputs, "input_shapes": shapes, "dtype": "float32", "dtypes": dtypes,
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
