"""Process-pool trial workers: forks of one warm template, their thread limits, their logs, and
a clean exit (nothing they or Prefect started outlives them)."""
from __future__ import annotations

import atexit
import multiprocessing
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from prefect import flow, get_run_logger, task
from prefect.task_runners import ProcessPoolTaskRunner

from flows.launch import runners
from flows.launch.runners import pool_internals, start_worker, with_runner
from tasks.search.plan import thread_limits
from tests.leftovers import left_behind

pytestmark = pytest.mark.slow  # whole flows, servers and browsers: the full suite, not the fast lane

ROOT = Path(__file__).resolve().parents[2]


def _start_after_a_handler(before: str, limits: dict[str, str]) -> None:
    atexit.register(Path(before).write_text, "Python's normal exit went on")
    start_worker(limits)


def _nothing() -> str:
    return "done"


def test_a_pool_worker_leaves_through_python_s_normal_exit(tmp_path):
    """Every exit handler runs, those registered before the worker started too (Prefect's, which
    stop what it started: a worker that skipped them left a temporary server running)."""
    before = tmp_path / "before.txt"
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_start_after_a_handler,
                               initargs=(str(before), thread_limits(1)))
    try:
        assert pool.submit(_nothing).result(timeout=300) == "done"
    finally:
        pool.shutdown(wait=True)
    assert before.read_text() == "Python's normal exit went on"


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

    run_id, pids = with_runner(_two_trials, workers=2)()
    assert os.getpid() not in pids
    messages: set[str] = set()
    for _ in range(100):  # the forwarding thread sends them on in the background
        with get_client(sync_client=True) as client:
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
        messages = {log.message for log in logs}
        if {"last words of a", "last words of b"} <= messages:
            break
        time.sleep(0.1)
    assert {"last words of a", "last words of b"} <= messages


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


def test_the_pinned_prefect_has_the_private_names_the_warm_pool_uses():
    """A Prefect upgrade that renames them fails here (and, for users, falls back: next test)."""
    runner = ProcessPoolTaskRunner(max_workers=1)
    with runner:
        assert pool_internals(runner) == []


def test_without_those_names_the_pool_is_prefect_s_own_and_still_runs(monkeypatch, caplog):
    monkeypatch.setattr(runners, "pool_internals", lambda runner: ["ProcessPoolExecutor._initargs"])
    (first, threads_a, _), (second, threads_b, _) = with_runner(_two_workers, workers=2)()
    assert first == second == os.getpid()  # spawned by this process: Prefect's public pool
    assert threads_a == threads_b == int(thread_limits(2)["TF_NUM_INTRAOP_THREADS"])  # same initializer
    assert "lacks ProcessPoolExecutor._initargs" in caplog.text


SEARCH = """
from flows.launch.runners import with_runner
from flows.search import search
result = with_runner(search, workers=2)(strategy="random", space="learning_rate=loguniform(1e-3,1e-2)", n_iter=2,
                                        model="mlp30", epochs=1, data={data!r},
                                        target="MedHouseVal", artifacts={artifacts!r})
print(result["best_val_loss"])
"""


def test_a_search_from_the_python_api_with_no_server_leaves_no_process_behind(housing_csv, tmp_path):
    mark = f"KERAS_FLOWS_TEST_MARK={uuid.uuid4()}"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | dict([mark.split("=", 1)])
    done = subprocess.run([sys.executable, "-c", SEARCH.format(data=str(housing_csv), artifacts=str(tmp_path / "a"))],
                          cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert float(done.stdout.split()[-1]) > 0
    assert left_behind(mark.split("=", 1)[1]) == []
