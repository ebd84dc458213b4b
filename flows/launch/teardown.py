"""Leaving the command line's finished process without the interpreter's teardown.

Freeing the modules of TensorFlow, Great Expectations and Prefect takes seconds and does
nothing a finished process needs (tests/benchmarks/RESULTS.md). The command line leaves this way
after a run that returned, once every exit handler has run: Prefect's (last logs and events,
sent before any of them), the embedded server's stop, and the rest. Nothing else does: a trial
worker that skipped its exit handlers would orphan what Prefect started in it.
"""
from __future__ import annotations

import logging
import os
import sys


def exit_without_teardown(finished: list[int]) -> None:
    """The last exit handler (register it first, so that it runs last): flush logging and the
    standard streams, then leave with ``finished[0]``; with ``finished`` empty, do nothing
    and let Python take its normal path.

    Exit handlers registered after it (Prefect's: last logs and events) have run by then;
    artifacts are already fsync'd.
    """
    if not finished:
        return
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(finished[0])
