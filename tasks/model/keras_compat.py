"""The two places the project reaches into Keras's private names, and the check that they exist.

Each has no public equivalent in Keras 3.15 (checked 2026-11-28):
- ``seeded`` swaps Keras's private ``seed_generator.python_random`` for a private generator;
- ``EpochTensorBoard`` reads TensorBoard's ``_should_trace`` / ``_should_write_train_graph``.
``check()`` runs before any training (and in the tests): a Keras that renamed either fails
with a message naming the attribute and the versions it was checked with, instead of a
silently unseeded run or an AttributeError mid-epoch. pyproject pins Keras to that minor.
It also quiets one TensorFlow warning that fused training steps raise falsely (``_OneTracePerModel``).
"""
from __future__ import annotations

import contextlib
import inspect
import logging
import random
from collections.abc import Iterator
from functools import lru_cache

CHECKED_WITH = "keras 3.15"


class KerasIncompatible(RuntimeError):
    """A private Keras name this project relies on is gone: install the pinned Keras."""


class _OneTracePerModel(logging.Filter):
    """Drops TensorFlow's "N out of the last M calls to <function TensorFlowTrainer._make_function
    .<locals>...> triggered tf.function retracing" warning. Keras makes each model's train and
    test functions as closures of one code object, and TensorFlow's detector counts all of them
    as one function: fitting several models in a process (the zoo, a worker's search trials)
    traces each once, as it must, and reads as retracing. Any other retracing warning stays."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("triggered tf.function retracing" in message and "TensorFlowTrainer._make_function" in message)


@lru_cache(maxsize=1)
def check() -> None:
    import keras
    from keras.src.random import seed_generator

    logging.getLogger("tensorflow").addFilter(_OneTracePerModel())

    missing = [] if hasattr(seed_generator, "python_random") else ["keras.src.random.seed_generator.python_random"]
    board = inspect.getsource(keras.callbacks.TensorBoard)  # attributes it sets in set_model and per batch
    missing += [f"keras.callbacks.TensorBoard.{name}" for name in ("_should_trace", "_should_write_train_graph")
                if f"self.{name} =" not in board]
    if missing:
        raise KerasIncompatible(f"keras {keras.__version__} lacks {', '.join(missing)}, which this project "
                                f"was checked with ({CHECKED_WITH}); install the version pyproject.toml pins")


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """``keras.utils.set_random_seed``, with Keras's default seeds drawn from a private generator.

    Keras draws each initializer's default seed from Python's global ``random``, which other
    threads share: websockets' keepalive ping in Prefect's event-loop thread calls
    ``random.getrandbits`` every 20 s, and one landing while a model was built changed its
    initial weights (a seeded run was not reproducible; seen as a flaky resume test). The
    private generator gives the same draws as the seeded global one would, undisturbed.
    """
    import keras
    from keras.src.random import seed_generator

    check()
    keras.utils.set_random_seed(seed)
    shared, seed_generator.python_random = seed_generator.python_random, random.Random(seed)
    try:
        yield
    finally:
        seed_generator.python_random = shared


@lru_cache(maxsize=1)
def epoch_tensorboard():
    """Keras's TensorBoard, minus its per-batch summary calls when it records per epoch.

    With ``update_freq="epoch"`` Keras 3 still calls ``summary.scalar`` for every batch
    metric inside ``record_if(False)``: nothing is written, but it costs ~2.8 s over 10
    Fashion-MNIST epochs (measured with py-spy). Graph and profiler handling stay Keras's.
    """
    import keras

    check()

    class EpochTensorBoard(keras.callbacks.TensorBoard):
        def on_train_batch_end(self, batch, logs=None):
            if self.update_freq == "epoch" and not self._should_trace and not self._should_write_train_graph:
                return
            super().on_train_batch_end(batch, logs)
    return EpochTensorBoard
