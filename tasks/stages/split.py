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

from tasks.stages import streamed
from tasks.stages.streamed_stats import TEST_SHARE, VALID_SHARE
from tasks.store.artifacts import ArtifactRef, ArtifactStore
from tasks.store.dataset import DatasetSpec, Frame, SplitIndex, read_parquet, spec_of, split_labels, to_arrow
from tasks.store.sources import read_schema
from tasks.store.stage import StageRun, reported


def _random_halves(index: np.ndarray, y: np.ndarray, seed: int, stratify: bool, test_size: float):
    from sklearn.model_selection import train_test_split

    counts = np.unique(y, return_counts=True)[1]
    strata = y if stratify and counts.min() >= 4 else None
    return train_test_split(index, test_size=test_size, random_state=seed, stratify=strata)


def assign_splits(spec: DatasetSpec, y: np.ndarray, own: np.ndarray | None) -> np.ndarray:
    """One label per row ("train", "valid", "test"), following the dataset's split rule;
    ``own`` is the table's own split column, if it has one."""
    rule = spec.split
    method = rule.method
    stratify = spec.task == "classification"
    index = np.arange(len(y))
    labels = np.empty(len(y), dtype=object)
    if method == "random":
        rest, test = _random_halves(index, y, rule.test_seed, stratify, TEST_SHARE)
        labels[test] = "test"
    elif method in ("head", "given"):
        if own is None:
            raise ValueError(f"{spec.name}: split method {method!r} needs the table's own split column")
        labels[:] = own
        rest = index[own == "train"]
        if method == "given" and (own == "valid").any():
            return labels
    else:
        raise ValueError(f"unknown split method {method!r}; use random, head or given")
    if method == "head":
        valid, rest = rest[: rule.valid_size], rest[rule.valid_size:]
    else:
        rest, valid = _random_halves(rest, y[rest], rule.valid_seed, stratify, VALID_SHARE)
    labels[rest] = "train"
    labels[valid] = "valid"
    return labels


def split(frame: Frame) -> SplitIndex:
    """The split index: row ids, split label and target, no features (they stay in raw)."""
    return SplitIndex(frame.spec, frame.y, frame.row_id, assign_splits(frame.spec, frame.y, frame.split))


@task(name="split", cache_policy=NO_CACHE)
def split_task(raw: ArtifactRef, artifacts: str, force: bool = False) -> ArtifactRef:
    """Write the split index (row id -> split) of the raw artifact; features are not copied."""
    def produce(run: StageRun) -> dict[str, ArtifactRef]:

        schema = read_schema(raw.path)
        spec = spec_of(schema)  # the features stay in raw: read only what the split needs

        def in_memory():
            table = read_parquet(raw.path, [c for c in ("row_id", "split", spec.target) if c in schema.names])
            y = table[spec.target].to_numpy()
            own = split_labels(table["split"]) if "split" in table.column_names else None
            return to_arrow(SplitIndex(spec, y, table["row_id"].to_numpy(), assign_splits(spec, y, own)))

        if spec.streamed:
            return {"split": run.put_batches(streamed.index_batches(raw.path, raw.rows, in_memory))}
        return {"split": run.put_table(in_memory())}

    run = StageRun(ArtifactStore(artifacts), "split", __name__, parents=[raw])
    return reported(run.run(produce, force)["split"], run)
