"""The champion gate: a new model replaces a dataset's champion only when its test metric beats
the champion's by a stated margin; the first model of a dataset becomes its champion.

Every decision (both models' hashes, both metrics, promoted or kept, why) is appended to one
JSON history per dataset in the store, ``<artifacts>/champions/<dataset>.json``, and published
as a markdown artifact under the stable key ``<dataset>-champion``. ``predict`` scores with the
champion unless told another model. A model is decided once: a run that reuses a cached model
(a scheduled re-run on unchanged data) adds nothing to the history. ``trained`` resolves the
champion, or a model named by its hash, to the files scoring needs (model, scaler, raw data).
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.dataset import DatasetSpec, spec_of
from tasks.errors import DataError, OptionError
from tasks.lineage import ArtifactRef, Lineage
from tasks.publish import slug
from tasks.stage import logger
from tasks.store import ArtifactStore
from tasks.verify import find_artifact

FOLDER = "champions"


@dataclass(frozen=True)
class Rule:
    """Which test metric decides, which way is better, and by how much a challenger must win."""

    metric: str
    higher_is_better: bool
    margin: float  # in the metric's own units

    def beats(self, new: float, old: float) -> bool:
        return new >= old + self.margin if self.higher_is_better else new <= old - self.margin

    def __str__(self) -> str:
        return f"{self.metric} {'+' if self.higher_is_better else '-'}{self.margin:g} or better"


RULES = {"classification": Rule("accuracy", True, 0.001), "regression": Rule("loss", False, 0.001)}


@dataclass(frozen=True)
class Decision:
    """One gate decision: the challenger, the champion it met (None for a dataset's first model)."""

    dataset: str
    task: str
    model: ArtifactRef
    scaler: ArtifactRef
    scaled: ArtifactRef
    metric: str
    value: float
    promoted: bool
    reason: str
    champion_before: str | None  # sha256 of the model that was champion
    value_before: float | None
    decided_at: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "Decision":
        refs = {k: ArtifactRef(**raw[k]) for k in ("model", "scaler", "scaled")}
        return cls(**{**raw, **refs})


def history_path(store: ArtifactStore, dataset: str) -> Path:
    return store.root / FOLDER / f"{slug(dataset)}.json"


def history(store: ArtifactStore, dataset: str) -> list[Decision]:
    path = history_path(store, dataset)
    if not path.is_file():
        return []
    return [Decision.from_json(raw) for raw in json.loads(path.read_text())]


def current(store: ArtifactStore, dataset: str) -> Decision | None:
    """The decision that made today's champion, or None when the dataset has none yet."""
    promoted = [d for d in history(store, dataset) if d.promoted]
    return promoted[-1] if promoted else None


def datasets(store: ArtifactStore) -> list[str]:
    """Datasets with a champion history in this store."""
    folder = store.root / FOLDER
    names = [json.loads(p.read_text())[0]["dataset"] for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    return names


def champion_for(store: ArtifactStore, dataset: str | None) -> Decision:
    """The champion of ``dataset``, or of the store's one dataset; a clear error otherwise."""
    names = datasets(store)
    if dataset is None:
        if len(names) != 1:
            raise OptionError(f"{store.root}: " + (f"champions of {', '.join(names)}: name one with --dataset"
                                                   if names else "no champion yet: run a training flow first"))
        dataset = names[0]
    found = current(store, dataset)
    if found is None:
        raise OptionError(f"{store.root}: no champion for dataset {dataset!r}"
                          + (f" (there are: {', '.join(names)})" if names else ": run a training flow first"))
    return found


def decide(store: ArtifactStore, dataset: str, task_name: str, model: ArtifactRef, scaler: ArtifactRef,
           scaled: ArtifactRef, scores: dict[str, float]) -> Decision | None:
    """Meet the champion; record and return the decision (None: this model was decided before)."""
    rule = RULES[task_name]
    with store.producing(FOLDER, slug(dataset)):  # one decision at a time per dataset
        past = history(store, dataset)
        if any(d.model.sha256 == model.sha256 for d in past):
            return None
        champion = next((d for d in reversed(past) if d.promoted), None)
        value = float(scores[rule.metric])
        if champion is None:
            promoted, reason = True, "the dataset's first model"
        elif rule.beats(value, champion.value):
            promoted, reason = True, f"{rule.metric} {value:.4f} beats {champion.value:.4f} (needs {rule})"
        else:
            promoted, reason = False, f"{rule.metric} {value:.4f} does not beat {champion.value:.4f} (needs {rule})"
        decision = Decision(dataset, task_name, model, scaler, scaled, rule.metric, value, promoted, reason,
                            champion.model.sha256 if champion else None, champion.value if champion else None,
                            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        path = history_path(store, dataset)
        path.parent.mkdir(parents=True, exist_ok=True)
        store.write_json(path, json.dumps([d.to_json() for d in [*past, decision]], indent=2))
    return decision


def markdown(store: ArtifactStore, dataset: str) -> str:
    lines = [f"### {dataset}: champion", ""]
    now = current(store, dataset)
    if now:
        lines += [f"- **champion** model `{now.model.sha256[:16]}` ({now.metric} {now.value:.4f})",
                  f"- **model file** `{now.model.path}`", ""]
    lines += ["| decided | model | metric | champion before | decision |", "|---|---|---|---|---|"]
    for d in reversed(history(store, dataset)):
        before = f"`{d.champion_before[:12]}` {d.value_before:.4f}" if d.champion_before else "-"
        lines.append(f"| {d.decided_at} | `{d.model.sha256[:12]}` | {d.metric} {d.value:.4f} | {before} | "
                     f"{'promoted' if d.promoted else 'kept the champion'}: {d.reason} |")
    return "\n".join(lines)


@task(name="champion", cache_policy=NO_CACHE)
def champion_task(model: ArtifactRef, scaler: ArtifactRef, scaled: ArtifactRef, scores: dict[str, float],
                  artifacts: str) -> bool:
    """The gate after evaluation; True when this model is (now) the dataset's champion."""
    store = ArtifactStore(artifacts)
    record = store.record(scaled)
    decision = decide(store, record.dataset, spec_of(pq.read_schema(scaled.path)).task, model, scaler,
                      scaled, scores)
    now = current(store, record.dataset)
    if decision is not None:
        logger().info("champion of %s: %s", record.dataset,
                      ("this model, " if decision.promoted else "unchanged, ") + decision.reason)
        try:
            from prefect.artifacts import create_markdown_artifact

            create_markdown_artifact(key=slug(f"{record.dataset}-champion"), markdown=markdown(store, record.dataset),
                                     description=f"{record.dataset}: champion and its history")
        except Exception as error:  # no run context (plain call): nothing to attach to
            logger().debug("no Prefect markdown artifact: %s", error)
    return now is not None and now.model.sha256 == model.sha256


# ---- the champion, or a named model, as the files scoring needs -----------------------------
@dataclass(frozen=True)
class Trained:
    """What scoring needs of one training: the model, its scaler, the data it was trained on."""

    model: ArtifactRef
    scaler: ArtifactRef
    raw: ArtifactRef
    split: ArtifactRef
    model_name: str
    spec: DatasetSpec


def trained(store: ArtifactStore, model: str = "champion", dataset: str | None = None) -> Trained:
    """``champion`` (of ``dataset``, or of the store's one dataset) or a model's hash prefix."""
    if model == "champion":
        decision = champion_for(store, dataset)
        model_ref, scaler = decision.model, decision.scaler
        scaled = decision.scaled
    else:
        sidecar = find_artifact(store.root, model)
        record = Lineage.read(sidecar)
        if record.stage != "model":
            raise OptionError(f"--model {model}: that is a {record.stage} artifact, not a model")
        model_ref = record.artifact
        scaled = next(p for p in record.parents if isinstance(p, ArtifactRef) and p.stage == "scaled")
        scaler = _scaler_of(store, scaled)
    raw, split = (next(p for p in store.record(scaled).parents if isinstance(p, ArtifactRef) and p.stage == stage)
                  for stage in ("raw", "split"))
    return Trained(model_ref, scaler, raw, split, store.record(model_ref).params["model"],
                   spec_of(pq.read_schema(raw.path)))


def _scaler_of(store: ArtifactStore, scaled: ArtifactRef) -> ArtifactRef:
    """The scaler written beside ``scaled`` (same stage run: same parents)."""
    parents = store.record(scaled).parents
    for sidecar in sorted((store.root / "scaler").glob("*.json")):
        record = Lineage.read(sidecar)
        if record.parents == parents:
            return record.artifact
    raise DataError(f"{store.root}: no scaler beside {scaled.path}: run the training flow again")
