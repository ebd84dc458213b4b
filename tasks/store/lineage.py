"""The lineage record: what the JSON sidecar beside every artifact declares, typed and versioned.

One writer (``ArtifactStore`` when it publishes an artifact) and one reader
(``ArtifactStore.record``); stages pass facts to each other only through the declared
fields: ``params`` are the run's parameters, ``training`` and ``evaluation`` the facts a
training or a test scoring found. A sidecar of another schema is refused with a message
that says what to do, never half-read.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.core.errors import InputError
from tasks.store.blocks import Blocks

SCHEMA = 3  # 1: free "summary" dicts; 2: a model's registry name only among the run's parameters


class LineageError(InputError, ValueError):
    """A sidecar is missing, unreadable or of another schema."""


@dataclass(frozen=True)
class ArtifactRef:
    """A pointer to one stored artifact: where it is, what it holds, and its hash."""

    stage: str
    path: str
    sha256: str
    rows: int | None = None

    @property
    def sidecar_path(self) -> Path:
        return Path(self.path).with_suffix(".json")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class RawFile:
    """A raw input file, named and hashed: where every chain of parents ends."""

    file: str
    sha256: str


Parent = ArtifactRef | RawFile


@dataclass(frozen=True)
class Training:
    """What a training found; on the model's record."""

    model: str  # the registry name (tasks/model/registry.py) the network was built from
    train_seconds: float
    epochs_run: int
    weights: int  # parameters of the network (not run parameters)
    resumed_at_epoch: int
    best_val_loss: float
    selected_on: str
    hyperparameters: dict[str, Any]  # effective values: the model's defaults under the overrides
    tensorboard: str | None = None
    worker: str | None = None  # host:pid of the process that trained
    stopped_early: bool = False  # by EarlyStopping, before its last epoch (or its halving rung)
    backend: str | None = None  # Keras's backend (tensorflow, jax)
    devices: tuple[str, ...] = ()  # the devices the replicas ran on (data-parallel when more than one)
    per_device_batch: int | None = None  # each device's share of the global batch
    hosts: int = 1  # processes the training was spread over (--hosts)


@dataclass(frozen=True)
class Evaluation:
    """The test scores, measured once; on the metrics' record."""

    test: dict[str, float]
    test_rows: int


@dataclass(frozen=True)
class Producer:
    """Another run that produced the same bytes (a retraining, a re-evaluation)."""

    flow_run_id: str | None
    task_run_id: str | None
    parents: tuple[Parent, ...]
    code_hash: str | None


@dataclass(frozen=True)
class Lineage:
    """Where one artifact came from: its parents, the run, the code, the parameters."""

    artifact: ArtifactRef
    stage: str
    dataset: str
    parents: tuple[Parent, ...]
    params: dict[str, Any]
    seed: int | None
    code_hash: str | None
    git: str | None
    libraries: dict[str, str]
    created: str
    flow_run_id: str | None = None
    flow_name: str | None = None
    task_run_id: str | None = None
    task_name: str | None = None
    training: Training | None = None
    evaluation: Evaluation | None = None
    validation_seconds: float | None = None
    data_docs: tuple[str, ...] = ()  # a validation report's pages in Great Expectations' Data Docs
    warnings: tuple[str, ...] = ()  # a validation report's findings that did not stop the run
    unseen: dict[str, int] | None = None  # a vocabulary's: per column, valid/test rows of categories train lacks
    also_produced_by: tuple[Producer, ...] = ()
    blocks: Blocks | None = None  # in a store on object storage: each block's sha256, for reads by range
    schema: int = SCHEMA

    @property
    def producer(self) -> Producer:
        return Producer(self.flow_run_id, self.task_run_id, self.parents, self.code_hash)

    def with_producer(self, other: Producer) -> Lineage:
        """This record, also naming ``other`` when it is a run not named yet."""
        known = (self.producer, *self.also_produced_by)
        if any((k.flow_run_id, k.parents) == (other.flow_run_id, other.parents) for k in known):
            return self
        return dataclasses.replace(self, also_produced_by=(*self.also_produced_by, other))

    @property
    def model_name(self) -> str:
        """The registry name of the model this is the record of; a clear error for any other record."""
        if self.training is None:
            raise LineageError(f"{self.artifact.path}: a {self.stage} artifact, not a trained model")
        return self.training.model

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True, default=str)

    @classmethod
    def read(cls, path: Path) -> Lineage:
        try:
            raw = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise LineageError(f"{path}: the artifact's lineage sidecar is missing") from None
        except (OSError, ValueError) as error:
            raise LineageError(f"{path}: the lineage sidecar is unreadable ({error})") from None
        if not isinstance(raw, dict):
            raise LineageError(f"{path}: the lineage sidecar is unreadable (a JSON {type(raw).__name__}, not a record)")
        if raw.get("schema") != SCHEMA:
            raise LineageError(f"{path}: lineage schema {raw.get('schema', 1)}, this version reads {SCHEMA}; "
                               "re-run the flow with --force to rewrite it")
        try:
            return _lineage(raw)
        except (KeyError, TypeError) as error:
            raise LineageError(f"{path}: the lineage sidecar lacks or mistypes {error}") from None


def parent_of(raw: dict[str, Any]) -> Parent:
    return ArtifactRef(**raw) if "path" in raw else RawFile(**raw)


def _producer(raw: dict[str, Any]) -> Producer:
    return Producer(raw["flow_run_id"], raw["task_run_id"], tuple(map(parent_of, raw["parents"])), raw["code_hash"])


def _lineage(raw: dict[str, Any]) -> Lineage:
    fields = {**raw, "artifact": ArtifactRef(**raw["artifact"]), "parents": tuple(map(parent_of, raw["parents"])),
              "also_produced_by": tuple(map(_producer, raw.get("also_produced_by", ())))}
    fields["training"] = Training(**raw["training"]) if raw.get("training") else None
    fields["evaluation"] = Evaluation(**raw["evaluation"]) if raw.get("evaluation") else None
    fields["data_docs"] = tuple(raw.get("data_docs") or ())
    fields["warnings"] = tuple(raw.get("warnings") or ())
    fields["blocks"] = Blocks.from_dict(raw["blocks"]) if raw.get("blocks") else None
    return Lineage(**fields)


def declared(**facts: Any) -> dict[str, Any]:
    """Stage facts by declared field name; an undeclared one fails where it is written."""
    names = {f.name for f in dataclasses.fields(Lineage)}
    unknown = sorted(set(facts) - names)
    if unknown:
        raise TypeError(f"lineage has no field {unknown}; declare it in tasks/store/lineage.py")
    return facts

