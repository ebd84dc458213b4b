"""Great Expectations: run validation suites here, or in a helper process that imported it early.

Importing Great Expectations costs a second or two of CPU even after Prefect and Keras are
loaded, and imports hold the GIL: in the flow's process it delayed the first stages.
The CLI starts ``GxWorker`` first thing, so the import runs in another process, on the
other core, while the flow's process imports Prefect and Keras. Validation profiles are
small frames (one row per feature, or the target column), cheap to send over a pipe.

Without a worker (tests, library use, served runs) suites run in this process.
Expectations travel as ``Expect`` values (GE's class name and its arguments), so the
caller never imports Great Expectations.

Given a Data Docs site (``tasks/checks/data_docs.py``), the helper renders it after replying.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from tasks.core.allocator import tune_memory


class Expect(NamedTuple):
    """One expectation: a Great Expectations class name (``ExpectColumnValuesToBeBetween``) and its
    keyword arguments, built into the real expectation where the suite runs."""

    type: str
    kwargs: dict[str, Any]


def expect(type_: str, **kwargs: Any) -> Expect:
    return Expect(type_, kwargs)


@dataclass
class Check:
    """One frame and the expectations to run on it; ``index_name`` says what a row is."""

    name: str
    frame: pd.DataFrame
    expectations: list[Expect]
    index_name: str


class Failure(NamedTuple):
    """One failed expectation, as data: which check and expectation, on which column, and the
    index labels (feature, row, split...) and values that broke it (the first few)."""

    check: str
    expectation: str  # Great Expectations' name, e.g. expect_column_values_to_be_between
    column: str
    kwargs: dict[str, Any]
    count: int  # rows of the check's frame that broke it (0 for a table-level expectation)
    index: list[Any]
    values: list[Any]
    observed: Any  # a table-level expectation's observed value
    line: str  # the technical one-line description (GE's terms), for the report and the log


class Outcome(NamedTuple):
    rows: list[dict[str, Any]]  # one per expectation: frame, expectation, column, severity, success, unexpected
    failures: list[Failure]  # failed expectations of severity "critical": the data is refused
    pages: list[str] = []  # the Data Docs page of each check, when a site was asked for
    warnings: list[Failure] = []  # failed expectations of a lower severity: said, recorded, not refused


# ---- in this process -------------------------------------------------------------------
@lru_cache(maxsize=1)
def _gx():
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from tqdm import tqdm

    # GE builds a tqdm bar even when bars are off, and tqdm's default lock is a multiprocessing
    # RLock: a semaphore that a process leaving with os._exit never frees ("resource_tracker:
    # 1 leaked semaphore objects" at the end of every run). A thread lock is all this needs.
    tqdm.set_lock(threading.RLock())
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return gx, context, context.data_sources.add_pandas("pipeline")


def context():
    """This process's (ephemeral) Great Expectations context."""
    return _gx()[1]


def _batch(name: str, frame: pd.DataFrame):
    _, _, source = _gx()
    try:
        asset = source.get_asset(name)
    except LookupError:
        asset = source.add_dataframe_asset(name=name)
        asset.add_batch_definition_whole_dataframe("whole")
    return asset.get_batch_definition("whole").get_batch(batch_parameters={"dataframe": frame})


def run_suites_here(point: str, checks: list[Check]) -> Outcome:
    """One Great Expectations suite per check, validated on its frame."""
    return _validate(point, checks, None)[0]


def _validate(point: str, checks: list[Check], site: str | None
              ) -> tuple[Outcome, Callable[[], str | None] | None]:
    """The outcome, and (given a Data Docs site) the call that renders its pages."""
    import great_expectations.expectations as gxe

    gx, _, _ = _gx()
    rows, failures, warnings, results = [], [], [], []
    for check in checks:
        unknown = [e.type for e in check.expectations if not hasattr(gxe, e.type)]
        if unknown:
            raise ValueError(f"no Great Expectations expectation named {', '.join(unknown)} "
                             f"(in the {check.name} check at {point})")
        suite = gx.ExpectationSuite(name=f"{point}-{check.name}".replace(" ", "-"),
                                    expectations=[getattr(gxe, e.type)(**e.kwargs) for e in check.expectations])
        result = _batch(f"{point}-{check.name}", check.frame).validate(suite, result_format="SUMMARY")
        results.append((check.name, result))
        for item in result.results:
            kwargs = item.expectation_config.kwargs
            severity = str(getattr(item.expectation_config.severity, "value", "critical"))  # GE's FailureSeverity
            rows.append({"frame": check.name, "expectation": item.expectation_config.type,
                         "column": str(kwargs.get("column") or kwargs.get("column_A") or ""),
                         "severity": severity, "success": bool(item.success),
                         "unexpected": int((item.result or {}).get("unexpected_count") or 0)})
            if not item.success:
                (failures if severity == "critical" else warnings).append(_failure(check, item))
    if site is None:
        return Outcome(rows, failures, [], warnings), None
    from tasks.checks.data_docs import planned

    pages, render = planned(site, results, context())
    return Outcome(rows, failures, pages, warnings), render


def _failure(check: Check, result) -> Failure:
    config, detail = result.expectation_config, result.result or {}
    kwargs = {k: v for k, v in config.kwargs.items() if k not in ("batch_id", "result_format")}
    index = [i.get(check.frame.index.name, i) if isinstance(i, dict) else i  # a named index
             for i in (detail.get("partial_unexpected_index_list") or [])]
    return Failure(check.name, config.type, str(kwargs.get("column") or kwargs.get("column_A") or ""), kwargs,
                   int(detail.get("unexpected_count") or 0), index, list(detail.get("partial_unexpected_list") or []),
                   detail.get("observed_value"), _describe(check, result))


def _describe(check: Check, result) -> str:
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k not in ("batch_id", "result_format")}
    columns = [kwargs.pop(k) for k in ("column", "column_A", "column_B") if k in kwargs]
    where = f"column {', '.join(map(repr, columns))} of the {check.name} frame" if columns \
        else f"the {check.name} frame"
    detail = result.result or {}
    if detail.get("partial_unexpected_list") is not None:
        values = detail["partial_unexpected_list"][:5]
        index = [i.get(check.frame.index.name, i) if isinstance(i, dict) else i
                 for i in (detail.get("partial_unexpected_index_list") or [])[:5]]
        examples = ", ".join(f"{check.index_name} {i}: {_plain(v)}" for i, v in zip(index, values)) \
            if index else ", ".join(map(_plain, values))
        found = f"{detail.get('unexpected_count')} unexpected, e.g. {examples}"
    else:
        found = f"observed {_plain(detail.get('observed_value'))}"
    if result.exception_info and result.exception_info.get("raised_exception"):
        found = f"error: {result.exception_info.get('exception_message')}"
    return f"{config.type} {kwargs} on {where}: {found}"


def _plain(value: Any) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(_plain(v) for v in value) + ")"
    if isinstance(value, (np.generic,)):
        value = value.item()
    return repr(value)


# ---- in a helper process ---------------------------------------------------------------
class WorkerGone(RuntimeError):
    """The helper process exited: the caller validates in its own process instead."""


def _serve(conn, finished) -> None:
    """The helper's loop: import GE at once, then run each (point, checks) it is sent; set
    ``finished`` once asked to stop and every Data Docs page is written."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    tune_memory()  # each suite's frames are freed after it: give them back
    _gx()
    while True:
        try:
            request = conn.recv()
        except EOFError:  # the parent is gone
            break
        if request is None:
            break
        point, checks, site = request
        try:
            outcome, render = _validate(point, checks, site)
        except Exception:  # noqa: BLE001 - sent back whole, re-raised by the parent
            conn.send(("error", traceback.format_exc()))
            continue
        conn.send(("ok", outcome))
        if render is not None:  # after the reply: the flow goes on meanwhile
            render()
    conn.close()
    finished.set()


class GxWorker:
    """A helper process holding Great Expectations, started before the flow's heavy imports."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")  # never fork a process that may hold TF threads
        self._conn, child = context.Pipe()
        self._finished = context.Event()
        self._lock = threading.Lock()  # one request and its reply at a time on the pipe
        self.process = context.Process(target=_serve, args=(child, self._finished), name="great-expectations",
                                       daemon=True)
        self.process.start()
        child.close()
        self._rendering = False  # Data Docs asked for: let the helper finish them before it exits

    def run(self, point: str, checks: list[Check], site: str | None = None) -> Outcome:
        with self._lock:
            try:
                self._conn.send((point, checks, site))
                self._rendering = self._rendering or site is not None
                while not self._conn.poll(0.5):  # no time limit on a big suite, but notice a dead worker
                    if not self.process.is_alive():
                        raise WorkerGone(f"exit code {self.process.exitcode}")
                status, payload = self._conn.recv()
            except (EOFError, OSError) as error:
                raise WorkerGone(str(error) or type(error).__name__) from error
        if status == "error":
            raise RuntimeError(f"Great Expectations failed in its worker process:\n{payload}")
        return payload

    def stop(self) -> None:
        """Ask the helper to finish; once it has (its Data Docs rendered), it is terminated rather
        than waited for through the interpreter's teardown of Great Expectations; one still
        importing (a run that failed early) is terminated at once."""
        with contextlib.suppress(OSError):
            self._conn.send(None)
        self._conn.close()
        if self._rendering:
            self._finished.wait(timeout=30)
        self.process.terminate()
        self.process.join(timeout=5)


_worker: GxWorker | None = None


def start_worker() -> GxWorker:
    """Start the helper process (once); validation in this process goes through it from now on.

    The helper is spawned: it imports the main module again, so a script that calls this
    must do so under ``if __name__ == "__main__":`` (as ``python -m flows`` does)."""
    global _worker
    if _worker is None:
        _worker = GxWorker()
    return _worker


def stop_worker() -> None:
    global _worker
    if _worker is not None:
        _worker.stop()
        _worker = None


def run_suites(point: str, checks: list[Check], site: str | None = None) -> tuple[Outcome, float]:
    """Validate ``checks``: in the worker when one is running, else here. Returns the outcome and
    the seconds it took. A worker that died is replaced by running here, with a warning.
    ``site``: the Data Docs folder to add the results to (rendered after the seconds are taken)."""
    start = time.perf_counter()
    if _worker is not None:
        try:
            return _worker.run(point, checks, site), time.perf_counter() - start
        except WorkerGone as gone:
            from tasks.store.stage import logger  # here, not at the top: the helper process needs no Prefect

            logger().warning("the Great Expectations worker process is gone (%s); validating in this process", gone)
            stop_worker()
    outcome, render = _validate(point, checks, site)
    seconds = time.perf_counter() - start
    if render is not None and (problem := render()):
        from tasks.store.stage import logger

        logger().warning("no Data Docs for %s validation: %s", point, problem)
    return outcome, seconds
