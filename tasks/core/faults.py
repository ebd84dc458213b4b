"""Fault-injection switches, off unless their variable is set: the crash tests use them to stop a
run at a known point (SIGKILL while an artifact is being written, while a stage runs).

``KERAS_FLOWS_PAUSE_AT=write:<folder>`` pauses once the bytes of an artifact for that store
folder are in its temporary file, before it gets its name; ``stage:<stage>`` pauses when that
stage starts producing; ``epoch:<n>`` pauses a training at the start of epoch n (the epochs
before it backed up). The process says so on stderr and sleeps, for the test to kill it.
"""
from __future__ import annotations

import os
import sys
import time

PAUSE_ENV = "KERAS_FLOWS_PAUSE_AT"


def pause_point(name: str) -> None:
    if os.environ.get(PAUSE_ENV) == name:
        print(f"fault injection: paused at {name}", file=sys.stderr, flush=True)
        time.sleep(600)
