"""A process-pool trial worker leaves through ``exit_without_teardown``: after the exit handlers
registered once it started, before the rest of Python's exit, and with nothing it sent lost."""
from __future__ import annotations

import atexit
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from prefect import flow, get_run_logger, task

from flows.launch.runners import start_worker, with_runner
from tasks.search.plan import thread_limits


def _start_after_a_handler(before: str, limits: dict[str, str]) -> None:
    atexit.register(Path(before).write_text, "Python's normal exit went on")
    start_worker(limits)


def _register_a_handler(after: str) -> str:
    atexit.register(Path(after).write_text, "the task's exit handler ran")
    return "done"


def test_a_pool_worker_runs_the_handlers_registered_after_it_then_leaves(tmp_path):
    before, after = tmp_path / "before.txt", tmp_path / "after.txt"
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_start_after_a_handler,
                               initargs=(str(before), thread_limits(1)))
    try:
        assert pool.submit(_register_a_handler, str(after)).result(timeout=300) == "done"
        workers = list(pool._processes.values())
    finally:
        pool.shutdown(wait=True)
    assert [worker.exitcode for worker in workers] == [0]
    assert after.read_text() == "the task's exit handler ran"
    assert not before.exists()  # the interpreter's own exit (module teardown: ~2 s with TensorFlow) was skipped


@task
def _last_words(tag: str) -> int:
    get_run_logger().warning("last words of %s", tag)  # sent just before the worker's task ends
    return os.getpid()


@flow
def _two_trials() -> tuple[str, list[int]]:
    from prefect.runtime import flow_run

    futures = [_last_words.submit(tag) for tag in ("a", "b")]
    return flow_run.id, [future.result() for future in futures]


def test_the_last_logs_of_prefect_pool_workers_reach_the_server():
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    run_id, pids = with_runner(_two_trials, workers=2)()
    assert os.getpid() not in pids
    APILogWorker.drain_all(timeout=10)
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
    assert {"last words of a", "last words of b"} <= {log.message for log in logs}


@task
def _where_and_how_many_threads() -> tuple[int, int, int]:
    import gc

    import tensorflow as tf

    tf.linalg.matmul(tf.ones((256, 256)), tf.ones((256, 256))).numpy()  # starts TensorFlow's thread pools
    threads = [Path(f"/proc/self/task/{t}/comm").read_text().strip() for t in os.listdir("/proc/self/task")]
    return os.getppid(), threads.count("tf_Compute"), gc.get_freeze_count()


@flow
def _two_workers() -> list[tuple[int, int, int]]:
    futures = [_where_and_how_many_threads.submit() for _ in range(2)]
    return [future.result() for future in futures]


def test_pool_workers_are_forks_of_one_template_and_keep_their_thread_limits():
    """The workers fork from the template that imported Keras before any limit was set in them,
    yet TensorFlow starts one compute thread each (two, its default here, would oversubscribe);
    what the template imported is frozen out of the workers' garbage collections."""
    (first, threads_a, frozen_a), (second, threads_b, frozen_b) = with_runner(_two_workers, workers=2)()
    assert first == second != os.getpid()
    assert "forkserver" in Path(f"/proc/{first}/cmdline").read_text()
    assert threads_a == threads_b == int(thread_limits(2)["TF_NUM_INTRAOP_THREADS"])
    assert min(frozen_a, frozen_b) > 100_000  # Keras, Prefect and the stages: ~490,000 objects
