"""What the terminal shows: a run's progress, and on failure one error block, without noise.

Two kinds of noise reach a user who cannot act on them: TensorFlow's C++ start-up lines,
printed straight to file descriptor 2 whatever ``TF_CPP_MIN_LOG_LEVEL`` says (absl's
"All log messages before absl::InitializeLog()" and oneDNN's notice, twice a process), and
the tracebacks Prefect prints for a failure the user caused (bad data, bad options), whose
message alone says what to do. ``--debug`` keeps both.
"""
from __future__ import annotations

import logging
import os
import re
import select
import threading

from tasks.core.errors import InputError

# TensorFlow's start-up lines that say nothing a user can act on (tensorflow-cpu 2.21)
CHATTER = (re.compile(rb"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"),
           re.compile(rb"^I0000 [0-9: .]+\d+ port\.cc:\d+\] oneDNN custom operations are on"))


class FilteredStderr:
    """File descriptor 2 through a pipe that drops ``CHATTER`` lines and passes the rest on.

    At the descriptor, not ``sys.stderr``: TensorFlow's C++ writes there directly, and the
    processes this one starts (trial workers, Great Expectations' helper) inherit it.
    """

    def __init__(self) -> None:
        self._read, write = os.pipe()
        self._stderr = os.dup(2)
        os.dup2(write, 2)
        os.close(write)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, name="stderr-filter", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        pending = b""
        while True:
            ready, _, _ = select.select([self._read], [], [], 0.1)
            if not ready:
                if self._stop.is_set():
                    break
                continue
            chunk = os.read(self._read, 65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            kept = [line for line in lines if not any(p.match(line) for p in CHATTER)]
            if kept:
                self._emit(b"\n".join(kept) + b"\n")
        if pending:
            self._emit(pending)

    def _emit(self, data: bytes) -> None:
        try:
            os.write(self._stderr, data)
        except OSError:  # the real stderr is gone (a pipe whose reader left): drop it, keep draining,
            pass  # so that writers to descriptor 2 never block on a full pipe

    def close(self) -> None:
        """Put the real stderr back, pass on what is still in the pipe, stop."""
        import sys

        sys.stderr.flush()
        os.dup2(self._stderr, 2)  # children still holding the pipe write into it; nobody waits on them
        self._stop.set()
        self._thread.join(timeout=2)
        if not self._thread.is_alive():  # the read end stays open: a child may still write to it
            os.close(self._stderr)


class _WithoutUserTracebacks(logging.Formatter):
    """A handler's formatter, minus the traceback of a failure the user caused."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        if not (record.exc_info and isinstance(record.exc_info[1], InputError)):
            return self.inner.format(record)
        saved = record.exc_info, record.exc_text  # other handlers (the API's) keep the traceback
        record.exc_info = record.exc_text = None
        try:
            return self.inner.format(record)
        finally:
            record.exc_info, record.exc_text = saved


def brief_console() -> None:
    """Prefect's console handler shows no traceback for an ``InputError`` (the API keeps it)."""
    import prefect.main  # noqa: F401 - sets up Prefect's logging, console handler included
    from prefect.logging.handlers import PrefectConsoleHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not isinstance(handler.formatter, _WithoutUserTracebacks):
            handler.setFormatter(_WithoutUserTracebacks(handler.formatter))


def error_block(error: InputError) -> str:
    """The one block a failed run ends with: ``error:`` and the message, indented after its first line."""
    first, *rest = str(error).strip().splitlines() or [type(error).__name__]
    return "\n".join([f"error: {first}", *(f"  {line.strip()}" if not line.startswith("  ") else line
                                          for line in rest)])
