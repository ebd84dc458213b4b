"""Prefect's embedded server, started as the CLI's first act instead of at its first API call.

Prefect starts its temporary server lazily, when the flow makes its first API call: after
Prefect, Keras and Great Expectations have been imported, and with the whole server stack
(FastAPI, SQLAlchemy: ~2 s) imported into the client too. Starting the same server (the
same app and settings Prefect uses, the same database under PREFECT_HOME) before those
imports lets it boot on the other core meanwhile. Where a server is configured
(PREFECT_API_URL, in the environment or the profile), nothing is started.
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ADDRESS_IN_USE = 3  # uvicorn's exit code when it cannot bind (Prefect retries on it too)


class EmbeddedServer:
    """One ``uvicorn prefect.server.api.server:create_app`` child process on a free local port."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.url: str | None = None
        self._env: dict[str, str] = {}

    def start(self) -> EmbeddedServer:
        """Start the server unless the settings already name one; returns immediately."""
        from prefect.settings import get_current_settings

        settings = get_current_settings()
        if settings.api.url:
            return self
        check_prefect()
        from flows.launch.server_app import PARENT_ENV

        self._env = {**os.environ, **settings.to_environment_variables(exclude_unset=True), "PREFECT_UI_ENABLED": "0",
                     PARENT_ENV: str(os.getpid())}
        self._spawn()
        return self

    def _spawn(self) -> None:
        port = _free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--app-dir", str(Path(__file__).resolve().parents[2]),
             "--factory", "flows.launch.server_app:create_app", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "error", "--lifespan", "on"], env=self._env)
        self.url = f"http://127.0.0.1:{port}/api"

    def wait(self, timeout: float = 60.0) -> None:
        """Block until the server answers /health; say plainly if it died or never answered."""
        if self.process is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() == ADDRESS_IN_USE:  # the port was taken since we picked it
                self._spawn()
            elif self.process.poll() is not None:
                raise RuntimeError(f"the embedded Prefect server exited with code {self.process.returncode} "
                                   "before answering; its error is printed above")
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{self.url}/health", timeout=1).close()
                return
            time.sleep(0.1)
        raise RuntimeError(f"the embedded Prefect server did not answer {self.url}/health within {timeout:.0f} s")

    @contextlib.contextmanager
    def api(self) -> Iterator[None]:
        """Point this process's Prefect client at the server (no-op when none was started)."""
        if self.url is None:
            yield
            return
        from prefect.settings import (
            PREFECT_API_URL,
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
            PREFECT_UI_URL,
            temporary_settings,
        )

        self.wait()
        # No UI here (as in Prefect's own embedded server): no "View at" link to a dead page.
        # No flow-run heartbeats: they tell a server that outlives the run that the run is alive;
        # this one stops with the run, and joining the heartbeat thread costs up to 1 s per flow.
        # Process-wide too: a thread that does not inherit the settings context (the process-pool
        # task runner's forwarding of its workers' logs and events) falls back to Prefect's global
        # settings, read at import, and would start a temporary server of its own and send the
        # trials' logs and events there (as Prefect's own heartbeat thread once did).
        from prefect.context import refresh_global_settings_context

        saved, os.environ["PREFECT_API_URL"] = os.environ.get("PREFECT_API_URL"), self.url
        refresh_global_settings_context()
        with temporary_settings(updates={PREFECT_API_URL: self.url, PREFECT_UI_URL: "",
                                         PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            try:
                yield
            finally:
                _drain_prefect_workers()
                if saved is None:
                    os.environ.pop("PREFECT_API_URL", None)
                else:
                    os.environ["PREFECT_API_URL"] = saved
                refresh_global_settings_context()

    def stop(self) -> None:
        """SIGTERM and wait for the server's own clean shutdown, as Prefect does."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


def _drain_prefect_workers() -> None:
    """Send the run's last logs and events while the server is still up (Prefect would
    otherwise send them at interpreter exit, to a server that is gone). Prefect has no
    documented call for this; ``drain_all`` is what its own exit handler runs, checked by
    ``check_prefect()`` at start-up."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    EventsWorker.drain_all(timeout=10)


def check_prefect() -> None:
    """Fail at start-up, not at the end of a run, if Prefect no longer has what this module
    uses. Reads Prefect's source instead of importing the server stack into the CLI (~2 s)."""
    import importlib.util

    import prefect

    def source(module: str) -> str:
        return Path(importlib.util.find_spec(module).origin).read_text()

    server = source("prefect.server.api.server")
    signature = server[server.index("def create_app("):][:600]
    missing = [f"prefect.server.api.server.create_app({name}=)" for name in ("ephemeral", "final")
               if f"{name}: bool" not in signature]
    if "def drain_all(" not in source("prefect._internal.concurrency.services"):  # their shared base class
        missing.append("QueueService.drain_all (of APILogWorker and EventsWorker)")
    if missing:
        raise RuntimeError(f"prefect {prefect.__version__} lacks {', '.join(missing)}, which this project was "
                           "checked with (prefect 3.9); install the version pyproject.toml pins")


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
