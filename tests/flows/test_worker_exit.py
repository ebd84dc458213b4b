"""A process-pool trial worker leaves through ``exit_without_teardown``: with exit code 0, after
the exit handlers registered once it started (Prefect's, a task's), and before the rest of
Python's exit (here, a handler registered before it, which therefore never runs)."""
from __future__ import annotations

import atexit
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from flows.runners import start_worker
from tasks.search import thread_limits


def _start_after_a_handler(before: str, limits: dict[str, str]) -> None:
    atexit.register(Path(before).write_text, "Python's normal exit went on")
    start_worker(limits)


def _register_a_handler(after: str) -> str:
    atexit.register(Path(after).write_text, "the task's exit handler ran")
    import tasks.train  # noqa: F401  (what a trial loads)

    return "done"


def test_a_pool_worker_exits_with_0_once_the_handlers_registered_after_it_ran(tmp_path):
    before, after = tmp_path / "before.txt", tmp_path / "after.txt"
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_start_after_a_handler,
                               initargs=(str(before), thread_limits(1)))
    assert pool.submit(_register_a_handler, str(after)).result(timeout=300) == "done"
    workers = list(pool._processes.values())
    pool.shutdown(wait=True)
    assert [worker.exitcode for worker in workers] == [0]
    assert after.read_text() == "the task's exit handler ran"
    assert not before.exists()  # the interpreter's own exit (module teardown: ~2 s with TensorFlow) was skipped
