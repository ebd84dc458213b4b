"""Where a search's trials run: in the flow's process, in a local process pool, or on Dask.

The search code is the same for all three; only the flow's task runner changes. Each worker
process gets its share of the cores for TensorFlow before TensorFlow starts its thread pools
there (two trainings that each take both cores of a 2-core machine only get in each other's
way), and reports to the flow's own server: with none configured, this process's embedded
server (``embedded.shared``), so that no worker starts a temporary server of its own.

The local pool's workers are forked from a template process that has imported Keras and the
trial stages once (``prestart``: the command line starts it while the embedded server boots),
so a worker is ready in well under a second instead of spawning and importing TensorFlow for
seconds beside the data preparation. Prefect's ``ProcessPoolTaskRunner`` has no public way to
choose how its workers start: ``WarmProcessPoolTaskRunner`` swaps the executor it made, before
any worker started, through three private names that ``pool_internals`` checks; where they are
gone it says so once and runs Prefect's own spawning pool, with the same initializer.
"""
from __future__ import annotations

import functools
import logging
import multiprocessing
import os

from tasks.core.environment import environment
from tasks.core.errors import OptionError
from tasks.search.plan import RUNNERS, thread_limits

# what every trial worker needs, then gc.freeze()
TEMPLATE_MODULES = ("flows.launch.runners", "flows.launch.worker_template")


def start_worker(limits: dict[str, str]) -> None:
    """A process-pool worker's first act: the thread limits (TensorFlow reads them when it
    starts its thread pools, at the first operation), then Keras's import (a no-op in a fork
    of the template; where workers spawn, their start-up cost, paid before the first trial)."""
    os.environ.update(limits)
    import keras  # noqa: F401


@functools.cache
def _worker_context():
    """Forks of a template process that imported ``TEMPLATE_MODULES`` (Linux, macOS), or
    fresh interpreters where forkserver does not exist (Windows)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(TEMPLATE_MODULES))
    return context


def prestart(workers: int, api_url: str | None = None) -> None:
    """Start the trial workers' template process now, under the workers' thread limits and
    with the API they will report to, so its imports overlap what the caller does next; a
    no-op once it runs. Its imports are the workers' start-up, paid once for all of them."""
    if _worker_context().get_start_method() != "forkserver":
        return
    from multiprocessing import forkserver

    # multiprocessing's own call, not in its documentation: where it is gone the template simply
    # starts with the first worker (without the head start, the workers forked all the same)
    ensure_running = getattr(forkserver, "ensure_running", None)
    if ensure_running is None:
        return
    # the template inherits this process's environment: these keys only, for as long as it takes
    with environment({**thread_limits(workers), **({"PREFECT_API_URL": api_url} if api_url else {})}):
        ensure_running()


POOL_INTERNALS = ("ProcessPoolTaskRunner._executor", "ProcessPoolTaskRunner._max_workers",
                  "ProcessPoolExecutor._initializer", "ProcessPoolExecutor._initargs")


def pool_internals(runner) -> list[str]:
    """The private names the warm pool relies on that an entered ``runner`` lacks (none, with the
    Prefect and Python this project pins; ``tests/flows/test_worker_exit.py`` holds that)."""
    from concurrent.futures import ProcessPoolExecutor

    executor = getattr(runner, "_executor", None)
    found = {"ProcessPoolTaskRunner._executor": isinstance(executor, ProcessPoolExecutor),
             "ProcessPoolTaskRunner._max_workers": isinstance(getattr(runner, "_max_workers", None), int),
             "ProcessPoolExecutor._initializer": hasattr(executor, "_initializer"),
             "ProcessPoolExecutor._initargs": hasattr(executor, "_initargs")}
    return [name for name in POOL_INTERNALS if not found[name]]


@functools.cache
def _process_pool():
    """Prefect's process-pool task runner, its executor's workers made by ``_worker_context``."""
    from concurrent.futures import ProcessPoolExecutor

    from prefect.task_runners import ProcessPoolTaskRunner

    class WarmProcessPoolTaskRunner(ProcessPoolTaskRunner):
        def __enter__(self):
            super().__enter__()
            missing = pool_internals(self)
            if missing:  # a Prefect or Python that changed them: its own pool, workers spawned as it starts them
                _say_once(f"this Prefect's process pool lacks {', '.join(missing)}; its workers spawn "
                          "(each imports TensorFlow) instead of forking from a warm template")
                return self
            spawning = self._executor  # no process started yet: a pool starts its workers at submit
            self._executor = ProcessPoolExecutor(max_workers=self._max_workers, mp_context=_worker_context(),
                                                 initializer=spawning._initializer, initargs=spawning._initargs)
            spawning.shutdown()
            return self

    return WarmProcessPoolTaskRunner


@functools.cache
def _say_once(message: str) -> None:
    logging.getLogger("keras_flows").warning(message)


def with_runner(flow, workers: int = 1, runner: str = "process", address: str | None = None):
    """``flow`` with its trials on ``runner``: ``process`` (``workers`` > 1: a local process
    pool; 1: the flow's own process) or ``dask`` (a local cluster of ``workers`` processes,
    or the scheduler at ``address``). With no server configured, this process is pointed at
    its embedded server from here on, for the workers to report to."""
    if runner not in RUNNERS:
        raise OptionError(f"unknown runner {runner!r}; choose from {', '.join(RUNNERS)}")
    if runner == "dask":
        from prefect_dask import DaskTaskRunner

        if address:  # the cluster's own workers: start them with the limits, e.g. TF_NUM_INTRAOP_THREADS=1
            return flow.with_options(task_runner=DaskTaskRunner(address=address))
        _report_to_one_server()
        return flow.with_options(task_runner=DaskTaskRunner(cluster_kwargs={
            "n_workers": max(workers, 1), "threads_per_worker": 1, "processes": True,
            "host": "127.0.0.1",  # the scheduler and its workers listen on this machine only
            "dashboard_address": "127.0.0.1:0",  # (None still binds :8787 for its HTTP routes: two clusters clash)
            "env": thread_limits(workers)}))
    if workers <= 1:
        return flow
    prestart(workers, _report_to_one_server())  # already running if the command line started it
    return flow.with_options(task_runner=_process_pool()(max_workers=workers, initializer=start_worker,
                                                         initargs=(thread_limits(workers),)))


def _report_to_one_server() -> str | None:
    """The API the workers report to: the configured one, or this process's embedded server,
    which this process then points at (for the rest of its life, as the server lasts)."""
    from prefect.settings import get_current_settings

    from flows.launch.embedded import shared

    configured = get_current_settings().api.url
    if configured:
        return configured
    server = shared()
    server.wait()
    os.environ["PREFECT_API_URL"] = server.url
    from prefect.context import refresh_global_settings_context

    refresh_global_settings_context()
    return server.url
