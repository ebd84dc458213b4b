"""Saved models: the one way a ``.keras`` file is written reproducibly and read back safely.

A ``.keras`` archive is a zip of ``metadata.json`` (with the save time), ``config.json``
(which names shared objects by their Python ``id()``) and ``model.weights.h5`` (stamped with
the zip entry's time). Clocks and memory addresses made the same training give different
bytes, so a model's content hash changed run to run. ``normalise`` rewrites the archive with
a fixed time and shared objects numbered in order: the same weights give the same file.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

from tasks.model import registry as models

_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold
_FIXED_SAVE_TIME = "1980-01-01@00:00:00"


def normalise(path: Path) -> Path:
    """Rewrite ``path`` in place (atomically) with fixed entry times and save time."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.normalised")
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(tmp, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "metadata.json":
                meta = json.loads(data)
                meta["date_saved"] = _FIXED_SAVE_TIME
                data = json.dumps(meta).encode()
            elif info.filename == "config.json":
                data = json.dumps(_numbered_shared_objects(json.loads(data), {})).encode()
            fixed = zipfile.ZipInfo(info.filename, date_time=_EPOCH)
            fixed.compress_type, fixed.external_attr = info.compress_type, info.external_attr
            target.writestr(fixed, data)
    os.replace(tmp, path)
    return path


def _numbered_shared_objects(config, numbers: dict[int, int]):
    """``shared_object_id`` values (``id()`` of an object saved once, referenced again) as 1, 2, ..."""
    if isinstance(config, dict):
        return {key: numbers.setdefault(value, len(numbers) + 1) if key == "shared_object_id"
                else _numbered_shared_objects(value, numbers) for key, value in config.items()}
    if isinstance(config, list):
        return [_numbered_shared_objects(value, numbers) for value in config]
    return config


def load(path: str | os.PathLike):
    """A stored model, loaded with ``safe_mode`` (no arbitrary code) and the registry's classes."""
    import keras

    return keras.models.load_model(path, safe_mode=True, custom_objects=models.custom_objects())
