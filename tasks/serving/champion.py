"""The champion gate: a new model replaces its gate's champion only when its test metric beats
the champion's by a stated margin; a gate's first model becomes its champion.

There is one gate per dataset, task and target (``gate_name``). Every decision (both models'
hashes, both metrics, promoted or kept, why) is appended to the gate's JSON history in the
store, ``<artifacts>/champions/<dataset>-<task>-<target>.json``, and published as a markdown
artifact under the key ``<gate>-champion``. A model is decided once: a run that reuses a cached
model (a scheduled re-run on unchanged data) adds nothing to the history. ``predict`` and
``export`` score with the champion unless told another model (``tasks/serving/resolve.py``).
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core.errors import OptionError
from tasks.store.artifacts import CHAMPIONS, ArtifactStore
from tasks.store.dataset import spec_of
from tasks.store.lineage import ArtifactRef
from tasks.store.publish import publish_markdown, slug
from tasks.store.sources import read_schema
from tasks.store.stage import logger

FOLDER = CHAMPIONS


@dataclass(frozen=True)
class Rule:
    """Which test metric decides, which way is better, and by how much a challenger must win:
    accuracy by points, a loss by a share of the champion's (MSE has the target's units)."""

    metric: str
    higher_is_better: bool
    margin: float

    def beats(self, new: float, old: float) -> bool:
        return new >= old + self.margin if self.higher_is_better else new <= old * (1 - self.margin)

    def __str__(self) -> str:
        return (f"{self.metric} +{self.margin:g} or more" if self.higher_is_better
                else f"{self.metric} {self.margin:.1%} lower or more")


RULES = {"classification": Rule("accuracy", True, 0.001), "regression": Rule("loss", False, 0.005)}


def gate_value(scores: dict[str, float], rule: Rule, heads: tuple[str, ...] | None) -> tuple[str, float]:
    """The metric the gate reads: a model with several heads is judged on its first (main) one,
    not on the sum of the heads' losses Keras reports as ``loss``."""
    name = f"{heads[0]}_{rule.metric}" if heads and f"{heads[0]}_{rule.metric}" in scores else rule.metric
    return name, float(scores[name])


@dataclass(frozen=True)
class Decision:
    """One gate decision: the challenger, the champion it met (None for a dataset's first model)."""

    dataset: str
    task: str
    target: str
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
    def from_json(cls, raw: dict[str, Any]) -> Decision:
        refs = {k: ArtifactRef(**raw[k]) for k in ("model", "scaler", "scaled")}
        return cls(**{**raw, **refs})


def gate_name(dataset: str, task_name: str, target: str) -> str:
    """One gate per dataset, task and target: models of the same table that predict another
    column (or classify instead of regress) are never measured against each other."""
    return slug(f"{dataset}-{task_name}-{target}")


def history_path(store: ArtifactStore, gate: str) -> Path:
    return store.root / FOLDER / f"{gate}.json"


def _relocated(store: ArtifactStore, decision: Decision) -> Decision:
    """Paths as they are in this store (moved, copied, or named relative to another folder)."""
    return dataclasses.replace(decision, **{k: store.here(getattr(decision, k)) for k in ("model", "scaler", "scaled")})


def history(store: ArtifactStore, gate: str) -> list[Decision]:
    path = history_path(store, gate)
    if not store.pull(path):  # the bucket's history, for a store named by a URL
        return []
    return [_relocated(store, Decision.from_json(raw)) for raw in json.loads(path.read_text())]


def current(store: ArtifactStore, gate: str) -> Decision | None:
    """The decision that made today's champion, or None when the gate has none yet."""
    promoted = [d for d in history(store, gate) if d.promoted]
    return promoted[-1] if promoted else None


def gates(store: ArtifactStore) -> dict[str, str]:
    """Every gate in this store, with what it judges ("housing (regression, MedHouseVal)")."""
    folder = store.root / FOLDER
    store.pull_folder(FOLDER)
    found = {}
    for path in sorted(folder.glob("[!.]*.json")) if folder.is_dir() else []:  # not a killed write's temp file
        first = json.loads(path.read_text())[0]
        found[path.stem] = f"{first['dataset']} ({first['task']}, {first['target']})"
    return found


def matching_gates(store: ArtifactStore, dataset: str | None) -> dict[str, str]:
    """The store's gates (name -> label) of ``dataset`` (its name, or a gate's), or all of them;
    ``OptionError`` naming the ones there are when none matches."""
    known = gates(store)
    picked = {g: label for g, label in known.items() if dataset is None or dataset in (g, label.split(" (")[0])}
    if not picked:
        listed = "; ".join(f"{label} as --dataset {g}" for g, label in known.items())
        raise OptionError(f"{store.root}: " + (f"no champion for dataset {dataset!r} (there are: {listed})" if known
                                               else "no champion yet: run a training flow first"))
    return picked


def champion_for(store: ArtifactStore, dataset: str | None) -> Decision:
    """The champion of ``dataset``, or of the store's one gate."""
    picked = matching_gates(store, dataset)
    if len(picked) != 1:
        listed = "; ".join(f"{label} as --dataset {g}" for g, label in picked.items())
        raise OptionError(f"{store.root}: champions of {listed}: name one with --dataset")
    (gate, label), = picked.items()
    found = current(store, gate)
    if found is None:
        raise OptionError(f"{store.root}: {label} has no champion: no model had a finite test score")
    return found


def decide(store: ArtifactStore, dataset: str, task_name: str, target: str, model: ArtifactRef,
           scaler: ArtifactRef, scaled: ArtifactRef, scores: dict[str, float],
           heads: tuple[str, ...] | None = None) -> Decision | None:
    """Meet the champion; record and return the decision (None: this model was decided before)."""
    rule, gate = RULES[task_name], gate_name(dataset, task_name, target)
    with store.producing(FOLDER, gate):  # one decision at a time per gate
        past = history(store, gate)
        if any(d.model.sha256 == model.sha256 for d in past):
            return None
        champion = next((d for d in reversed(past) if d.promoted), None)
        metric, value = gate_value(scores, rule, heads)
        if value != value or abs(value) == float("inf"):
            promoted, reason = False, f"{metric} is {value}: not a score"
        elif champion is None:
            promoted, reason = True, "the dataset's first model"
        elif rule.beats(value, champion.value):
            promoted, reason = True, f"{rule.metric} {value:.4f} beats {champion.value:.4f} (needs {rule})"
        else:
            promoted, reason = False, f"{rule.metric} {value:.4f} does not beat {champion.value:.4f} (needs {rule})"
        decision = Decision(dataset, task_name, target, model, scaler, scaled, metric, value, promoted, reason,
                            champion.model.sha256 if champion else None, champion.value if champion else None,
                            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        path = history_path(store, gate)
        path.parent.mkdir(parents=True, exist_ok=True)
        store.write_json(path, json.dumps([d.to_json() for d in [*past, decision]], indent=2))
    return decision


def markdown(store: ArtifactStore, gate: str) -> str:
    lines = [f"### {gates(store)[gate]}: champion", ""]
    now = current(store, gate)
    if now:
        lines += [f"- **champion** model `{now.model.sha256[:16]}` ({now.metric} {now.value:.4f})",
                  f"- **model file** `{now.model.path}`", ""]
    lines += ["| decided | model | metric | champion before | decision |", "|---|---|---|---|---|"]
    for d in reversed(history(store, gate)):
        before = f"`{d.champion_before[:12]}` {d.value_before:.4f}" if d.champion_before else "-"
        lines.append(f"| {d.decided_at} | `{d.model.sha256[:12]}` | {d.metric} {d.value:.4f} | {before} | "
                     f"{'promoted' if d.promoted else 'kept the champion'}: {d.reason} |")
    return "\n".join(lines)


@task(name="champion", cache_policy=NO_CACHE)
def champion_task(model: ArtifactRef, scaler: ArtifactRef, scaled: ArtifactRef, scores: dict[str, float],
                  artifacts: str) -> bool:
    """The gate after evaluation; True when this model is (now) the dataset's champion (as a
    Cached state when the model met the gate before: ``flows.steps.pipeline.value`` unwraps it)."""
    from tasks.model.registry import entry

    store = ArtifactStore(artifacts)
    dataset, spec = store.record(scaled).dataset, spec_of(read_schema(scaled.path))
    heads = entry(store.record(model).model_name).outputs
    decision = decide(store, dataset, spec.task, spec.target, model, scaler, scaled, scores, heads)
    gate = gate_name(dataset, spec.task, spec.target)
    now = current(store, gate)
    if decision is not None:
        logger().info("champion of %s: %s", dataset, ("this model, " if decision.promoted else "unchanged, ")
                      + decision.reason)
        publish_markdown(f"{gate}-champion", markdown(store, gate), f"{gates(store)[gate]}: champion and its history")
    is_champion = now is not None and now.model.sha256 == model.sha256
    if decision is None:  # decided before: shown as Cached in the UI, like a reused stage
        from prefect.states import Completed

        return Completed(name="Cached", message="this model met the gate before", data=is_champion)
    return is_champion
