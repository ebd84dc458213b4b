"""The batches ``fit`` trains on: Keras's own order, fed without its helper threads.

Given numpy arrays, Keras 3 (TensorFlow backend) builds a ``tf.data`` pipeline with a parallel
map and an autotuned prefetch: every batch crosses two background threads. For the course's
small networks that handoff is most of the work, and beside a second training on a small
machine the cores wait on each other's handoffs. ``epoch_batches`` gives the same batches in
the same order (per epoch the same seeded ``tf.random.shuffle`` of the row numbers, then
consecutive slices of ``batch_size``) from native dataset kernels on the caller's threads:
a fraction of the context switches, less time alone, and no slowdown beside another training
(``tests/benchmarks/feeding.py`` measures both loaders; its figures are in
``tests/benchmarks/RESULTS.md``). A test checks that the losses equal Keras's to the bit.

Other backends (JAX on a GPU machine) keep Keras's own loader: the arrays are returned as given.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

CHUNK_BATCHES = 64  # batches gathered per step: few function calls per epoch, one small copy at a time


def _rows(structure: Any) -> int:
    first = next(iter(structure.values())) if isinstance(structure, dict) else structure
    return len(first)


def epoch_batches(inputs: np.ndarray | dict[str, np.ndarray], targets: np.ndarray | dict[str, np.ndarray],
                  batch_size: int, shuffle: bool):
    """(inputs, targets) batches for ``fit``/``validation_data``: a ``tf.data.Dataset`` under the
    TensorFlow backend, shuffled anew each time it is iterated (each epoch) exactly as Keras's
    loader (which, under a global seed, repeats one order every epoch: so does this);
    otherwise the pair unchanged (then pass ``batch_size`` to ``fit`` as usual)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return inputs, targets
    import tensorflow as tf

    n, chunk = _rows(inputs), batch_size * CHUNK_BATCHES
    data = tf.nest.map_structure(tf.convert_to_tensor, (inputs, targets))

    def epoch_order(_):  # the same two ops as Keras's ``permutation``: the shuffle gets the same seed
        indices = tf.range(n, dtype=tf.int64)
        if shuffle:
            indices = tf.random.shuffle(indices)
        return indices

    def chunks(indices):
        full = n // chunk
        parts = tf.data.Dataset.from_tensor_slices(tf.reshape(indices[:full * chunk], [full, chunk]))
        return parts.concatenate(tf.data.Dataset.from_tensors(indices[full * chunk:])) if n % chunk else parts

    def rows(indices):
        return tf.nest.map_structure(lambda t: tf.gather(t, indices, axis=0), data)

    def batched(x, y):  # a chunk is a whole number of batches, so batches run on across chunks as Keras's
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)

    dataset = (tf.data.Dataset.range(1).map(epoch_order).flat_map(chunks).map(rows).flat_map(batched)
               .apply(tf.data.experimental.assert_cardinality(math.ceil(n / batch_size))))
    options = tf.data.Options()
    options.experimental_optimization.apply_default_optimizations = False  # as Keras: no graph rewrite
    options.experimental_external_state_policy = tf.data.experimental.ExternalStatePolicy.IGNORE
    options.threading.private_threadpool_size = 1
    options.threading.max_intra_op_parallelism = 1
    options.autotune.enabled = False
    return dataset.with_options(options)


def fit_data(train: tuple[Any, Any], valid: tuple[Any, Any], batch_size: int) -> dict[str, Any]:
    """``fit``'s data arguments for (inputs, targets) of train and valid: the train rows
    reshuffled each epoch, the valid rows in order, as Keras's ``fit(x, y, batch_size=...)``."""
    batches = epoch_batches(*train, batch_size, shuffle=True)
    if isinstance(batches, tuple):
        return {"x": batches[0], "y": batches[1], "batch_size": batch_size, "validation_data": valid}
    return {"x": batches, "validation_data": epoch_batches(*valid, batch_size, shuffle=False),
            "shuffle": False}  # the batches shuffle themselves; Keras would warn that it cannot
