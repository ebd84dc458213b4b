"""Which files a stored model needs to score: the champion of a gate, or a model named by a
prefix of its hash, resolved to the model, its train-only scaler and the data it was trained
on (raw rows and split, for training's profile). ``predict``, ``export`` and the drift checks
take a ``Trained``; the gate that chooses champions is ``tasks/serving/champion.py``.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from tasks.core.errors import DataError, OptionError
from tasks.serving.champion import champion_for
from tasks.store.artifacts import ArtifactStore
from tasks.store.dataset import DatasetSpec, spec_of
from tasks.store.lineage import ArtifactRef, Lineage
from tasks.store.sources import read_schema

HEX = re.compile(r"[0-9a-f]+")  # a model is named by a prefix of the sha256 its file is named by


@dataclass(frozen=True)
class Trained:
    """What scoring needs of one training: the model, its scaler (and its categorical columns'
    vocabulary), the data it was trained on; ``spec`` is the raw data's (the columns a new table
    must have), ``inputs`` the scaled data's (the columns the model takes)."""

    model: ArtifactRef
    scaler: ArtifactRef
    raw: ArtifactRef
    split: ArtifactRef
    model_name: str
    spec: DatasetSpec
    inputs: DatasetSpec
    vocabulary: ArtifactRef | None = None


def trained(store: ArtifactStore, model: str = "champion", dataset: str | None = None) -> Trained:
    """``champion`` (of ``dataset``, or of the store's one dataset) or a model's hash prefix."""
    written = None  # what the scale stage wrote with the scaled data, read once when needed
    if model == "champion":
        decision = champion_for(store, dataset)
        model_ref, scaler = decision.model, decision.scaler
        scaled = decision.scaled
    else:
        store.pull_folder("model")
        known = sorted((store.root / "model").glob("[!.]*.json"))
        matches = [m for m in known if m.stem.startswith(model)] if HEX.fullmatch(model) else []
        if len(matches) != 1:
            listed = ", ".join(m.stem[:12] for m in known[:5]) + (", ..." if len(known) > 5 else "")
            raise OptionError(f"--model {model}: " + (
                f"{len(matches)} models match: give more of the hash" if matches else
                "no model artifact's sha256 starts so; give 'champion' or a prefix of one of the store's "
                f"models ({listed or 'none yet'})"))
        record = Lineage.read(matches[0])
        model_ref = store.here(record.artifact)
        scaled = store.here(next(p for p in record.parents if isinstance(p, ArtifactRef) and p.stage == "scaled"))
        written = _written_with(store, scaled)
        scaler = written["scaler"]
    raw, split = (store.here(next(p for p in store.record(scaled).parents
                                   if isinstance(p, ArtifactRef) and p.stage == stage)) for stage in ("raw", "split"))
    spec = spec_of(read_schema(raw.path))
    vocabulary = (written or _written_with(store, scaled)).get("vocabulary") if spec.categorical else None
    return Trained(model_ref, scaler, raw, split, store.record(model_ref).model_name, spec,
                   spec_of(read_schema(scaled.path)), vocabulary)


def _written_with(store: ArtifactStore, scaled: ArtifactRef) -> dict[str, ArtifactRef]:
    """What the scale stage wrote with ``scaled`` (its scaler, a vocabulary): the one cache entry
    that holds them all."""
    store.pull_folder("_cache/scaled")
    for entry in sorted((store.root / "_cache" / "scaled").glob("[!.]*.json")):
        refs = json.loads(entry.read_text())
        if refs.get("scaled", {}).get("sha256") == scaled.sha256 and "scaler" in refs:
            return {name: store.here(ArtifactRef(**{k: v for k, v in ref.items() if k != "stat"}))
                    for name, ref in refs.items() if name != "scaled"}
    raise DataError(f"{store.root}: no scaler recorded with {scaled.path}: run the training flow again")
