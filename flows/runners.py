"""Where a search's trials run: in the flow's process, in a local process pool, or on Dask.

The search code is the same for all three; only the flow's task runner changes. Each worker
process gets its share of the cores for TensorFlow *before* TensorFlow loads there (two
trainings that each take both cores of a 2-core machine only get in each other's way), then
imports Keras once, so every trial after the first finds it warm.
"""
from __future__ import annotations

import atexit
import os

from flows.teardown import exit_without_teardown
from tasks.errors import OptionError
from tasks.search import RUNNERS, thread_limits


def start_worker(limits: dict[str, str]) -> None:
    """A process-pool worker's first act: the thread limits, then Keras's import (the worker's
    start-up cost, paid once, not by its first trial).

    Its exit skips the interpreter's teardown, which the flow run would wait for (~2 s with
    TensorFlow loaded), once the exit handlers registered from here on (Keras's, the trials')
    have run; those registered before (at Prefect's import) are skipped, and logging and the
    streams are flushed instead. It leaves with 0 even where Python would say 1 (an exception
    escaping the worker's loop): the pool watches whether its workers ended, not their codes."""
    atexit.register(exit_without_teardown, [0])  # before Keras and the trials register theirs
    os.environ.update(limits)
    import keras  # noqa: F401


def with_runner(flow, workers: int = 1, runner: str = "process", address: str | None = None):
    """``flow`` with its trials on ``runner``: ``process`` (``workers`` > 1: a local process
    pool; 1: the flow's own process) or ``dask`` (a local cluster of ``workers`` processes,
    or the scheduler at ``address``)."""
    if runner not in RUNNERS:
        raise OptionError(f"unknown runner {runner!r}; choose from {', '.join(RUNNERS)}")
    if runner == "dask":
        from prefect_dask import DaskTaskRunner

        if address:  # the cluster's own workers: start them with the limits, e.g. TF_NUM_INTRAOP_THREADS=1
            return flow.with_options(task_runner=DaskTaskRunner(address=address))
        return flow.with_options(task_runner=DaskTaskRunner(cluster_kwargs={
            "n_workers": max(workers, 1), "threads_per_worker": 1, "processes": True, "dashboard_address": None,
            "host": "127.0.0.1",  # the scheduler and its workers listen on this machine only
            "env": thread_limits(workers)}))
    if workers <= 1:
        return flow
    from prefect.task_runners import ProcessPoolTaskRunner

    return flow.with_options(task_runner=ProcessPoolTaskRunner(max_workers=workers, initializer=start_worker,
                                                               initargs=(thread_limits(workers),)))
