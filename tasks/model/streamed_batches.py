"""Batches read from a scaled artifact a row group at a time, for tables larger than memory.

``split_batches`` gives a ``keras.utils.PyDataset`` (Keras's own interface for data that is not
held in arrays), so ``fit``, ``evaluate`` and every callback, the backup and resume included, run
as they do on arrays. Each epoch reads the split's row groups in a seeded order (a new order per
epoch, told by ``epoch_callback``: a resumed training replays the orders of an uninterrupted one),
``WINDOW_GROUPS`` groups at a time, and shuffles the rows of that window (the bounded shuffle
buffer): the same seed gives the same batches. Unshuffled (validation, test), the rows
come in the file's order. Memory: a window of groups and a batch, whatever the table's size.

Keras asks for the batches of an epoch in order (one worker, no multiprocessing, ``shuffle=False``
in ``fit``); a batch asked for out of order is found by reading the epoch again up to it.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from tasks.store.dataset import Frame, spec_of
from tasks.store.sources import parquet_file

WINDOW_GROUPS = 8  # row groups shuffled together (about 1,200,000 train rows of a big table)


class ScaledFile:
    """A scaled artifact left on disk: its spec and, per split, the row groups holding its rows."""

    def __init__(self, path: str):
        self.path = str(path)
        parquet = parquet_file(self.path)
        self.spec = spec_of(parquet.schema_arrow)
        meta, split_at = parquet.metadata, parquet.schema_arrow.get_field_index("split")
        self.groups: dict[str, list[int]] = {}
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(split_at).statistics
            names = (stats.min, stats.max) if stats is not None and stats.has_min_max else ("", "~")
            for name in ("train", "valid", "test"):  # a group holds the splits between its min and max
                if names[0] <= name <= names[1]:
                    self.groups.setdefault(name, []).append(g)
        target_at = parquet.schema_arrow.get_field_index(self.spec.target)
        highs = [meta.row_group(g).column(target_at).statistics for g in range(meta.num_row_groups)]
        self.largest_target = max((s.max for s in highs if s is not None and s.has_min_max), default=0)

    def rows(self, split: str) -> int:
        """Rows of ``split`` (read from the split column of its groups, not their features)."""
        parquet = parquet_file(self.path)
        return sum(int(np.count_nonzero(parquet.read_row_group(g, columns=["split"]).column(0).to_numpy(
            zero_copy_only=False) == split)) for g in self.groups.get(split, []))

    def frames(self, split: str, order: list[int] | None = None) -> Iterator[Frame]:
        """The rows of ``split``, a row group at a time (in ``order``, default the file's)."""
        parquet = parquet_file(self.path)
        columns = ["split", self.spec.target, *self.spec.features]
        for g in (order if order is not None else self.groups.get(split, [])):
            table = parquet.read_row_group(g, columns=columns)
            keep = table.column(0).to_numpy(zero_copy_only=False) == split
            X = np.column_stack([table.column(j + 2).to_numpy() for j in range(len(self.spec.features))])
            y = table.column(1).to_numpy()
            yield Frame(self.spec, X[keep], y[keep], np.zeros(int(keep.sum()), np.int64))


def split_batches(scaled: ScaledFile, split: str, batch_size: int, to_batch: Callable[[Frame], tuple[Any, Any]],
                  seed: int = 0, shuffle: bool = False):
    """A ``keras.utils.PyDataset`` of ``split``'s rows in batches of ``batch_size``: ``to_batch``
    turns a frame of rows into what the model takes (its inputs and targets)."""
    import keras

    class SplitBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False)
            self.rows, self.epoch, self._epoch, self._next = scaled.rows(split), 0, None, 0

        def __len__(self) -> int:
            return math.ceil(self.rows / batch_size)

        def __getitem__(self, i: int):
            if i >= len(self):
                raise IndexError(f"batch {i} of {len(self)}")
            if self._epoch is None or i < self._next:  # a new pass (Keras peeks at the first batches)
                self._epoch, self._next = self._batches(), 0
            while self._next < i:
                next(self._epoch)
                self._next += 1
            self._next += 1
            return next(self._epoch)

        def set_epoch(self, epoch: int) -> None:
            """The epoch Keras starts (its index from 0, a resumed training's too): its order of groups and rows."""
            self.epoch, self._epoch = epoch, None

        def on_epoch_end(self) -> None:
            self._epoch = None

        def _batches(self) -> Iterator[tuple[Any, Any]]:
            rng = np.random.default_rng([seed, self.epoch])
            groups = list(scaled.groups.get(split, []))
            order = [groups[k] for k in rng.permutation(len(groups))] if shuffle else groups
            left: Frame | None = None
            for start in range(0, len(order), WINDOW_GROUPS):
                window = [left] if left is not None else []
                window += list(scaled.frames(split, order[start:start + WINDOW_GROUPS]))
                rows = joined(window)
                if shuffle:
                    rows = rows.take(rng.permutation(len(rows)))
                full = len(rows) // batch_size * batch_size
                for b in range(0, full, batch_size):
                    yield to_batch(rows.take(slice(b, b + batch_size)))
                left = rows.take(slice(full, len(rows)))
            if left is not None and len(left):
                yield to_batch(left)

    return SplitBatches()


def epoch_callback(batches):
    """A Keras callback that tells ``batches`` (made by ``split_batches``) each epoch's index."""
    import keras

    return keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: batches.set_epoch(epoch))


def joined(frames: list[Frame]) -> Frame:
    """Frames of the same data as one (their rows in turn)."""
    if len(frames) == 1:
        return frames[0]
    first = frames[0]
    return Frame(first.spec, np.concatenate([f.X for f in frames]), np.concatenate([f.y for f in frames]),
                 np.concatenate([f.row_id for f in frames]))
