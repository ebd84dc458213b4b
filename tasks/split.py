"""Splitting: assign every raw row to exactly one of train / valid / test.

The course's rules are the defaults: Fashion-MNIST keeps its own test set and its
first 5,000 training images become the validation set; housing is split with
``train_test_split(random_state=7)`` and then ``(random_state=11)`` on the rest.
A user table keeps its own ``split`` column, or gets the same seeded random split.
"""
from __future__ import annotations

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.dataset import Frame, read_frame, spec_of, to_arrow
from tasks.stage import StageRun
from tasks.store import ArtifactRef, ArtifactStore


def _random_halves(index: np.ndarray, y: np.ndarray, seed: int, stratify: bool, test_size=0.25):
    from sklearn.model_selection import train_test_split

    counts = np.unique(y, return_counts=True)[1]
    strata = y if stratify and counts.min() >= 4 else None
    return train_test_split(index, test_size=test_size, random_state=seed, stratify=strata)


def assign_splits(frame: Frame) -> np.ndarray:
    """One label per row ("train", "valid", "test"), following the dataset's split rule."""
    rule = frame.spec.split
    method = rule.get("method", "random")
    stratify = frame.spec.task == "classification"
    index = np.arange(len(frame))
    labels = np.empty(len(frame), dtype=object)
    if method == "random":
        rest, test = _random_halves(index, frame.y, rule.get("test_seed", 7), stratify)
        labels[test] = "test"
    elif method in ("head", "given"):
        if frame.split is None:
            raise ValueError(f"{frame.spec.name}: split method {method!r} needs the table's own split column")
        labels[:] = frame.split
        rest = index[frame.split == "train"]
        if method == "given" and (frame.split == "valid").any():
            return labels
    else:
        raise ValueError(f"unknown split method {method!r}; use random, head or given")
    if method == "head":
        valid = rest[: rule["valid_size"]]
        rest = rest[rule["valid_size"]:]
    else:
        rest, valid = _random_halves(rest, frame.y[rest], rule.get("valid_seed", 11), stratify)
    labels[rest] = "train"
    labels[valid] = "valid"
    return labels


def split(frame: Frame) -> Frame:
    """The split index: row ids, split label and target, no features (they stay in raw)."""
    labels = assign_splits(frame)
    return Frame(frame.spec, np.empty((len(frame), 0)), frame.y, frame.row_id, labels)


@task(name="split", cache_policy=NO_CACHE)
def split_task(raw: ArtifactRef, artifacts: str, force: bool = False) -> ArtifactRef:
    """Write the split index (row id -> split) of the raw artifact; features are not copied."""
    def produce(run: StageRun) -> dict[str, ArtifactRef]:
        import pyarrow.parquet as pq

        schema = pq.read_schema(raw.path)
        columns = [c for c in ("row_id", "split", spec_of(schema).target) if c in schema.names]
        return {"split": run.put_table(to_arrow(split(read_frame(raw.path, columns))))}

    return StageRun(ArtifactStore(artifacts), "split", __name__, parents=[raw]).run(produce, force)["split"]
