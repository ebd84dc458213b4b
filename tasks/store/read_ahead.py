"""An iterator's items produced on a thread of their own, a few ahead of the one consuming them.

The store writes a streamed artifact a row group at a time (``ArtifactStore.put_batches``):
reading, checking and computing the next group (Arrow's decoding, numpy) and encoding, hashing
and writing the last one (Parquet's encoder, sha256) each release the GIL, so on two cores the
two halves of a stage overlap instead of taking turns. At most ``depth`` items wait between
them, so memory grows by that many row groups, not with the table.
"""
from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from queue import Empty, Full, Queue
from typing import TypeVar

T = TypeVar("T")
_END = object()


def read_ahead(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """``items``, in order, produced ahead on another thread (which sees this thread's context
    variables: Prefect's run context, for its logger). An exception raised by ``items`` is raised
    here, where the consumer would have met it; a consumer that stops early stops the producer."""
    waiting: Queue = Queue(maxsize=depth)
    stop = threading.Event()

    def hand_over(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                waiting.put(entry, timeout=0.05)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not hand_over((item, None)):
                    return
            hand_over((_END, None))
        except BaseException as error:  # noqa: BLE001 - raised again on the consuming thread
            hand_over((_END, error))
        finally:
            close = getattr(items, "close", None)
            if close:
                close()

    producer = threading.Thread(target=contextvars.copy_context().run, args=(produce,), name="read-ahead", daemon=True)
    producer.start()
    try:
        while True:
            try:
                item, error = waiting.get(timeout=0.05)
            except Empty:
                if not producer.is_alive() and waiting.empty():
                    raise RuntimeError("read-ahead: the producing thread ended without a word") from None
                continue
            if item is _END:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        producer.join()
