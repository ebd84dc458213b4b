"""Prefect's server for a run on a machine where none is configured, started as early as possible.

Prefect would start its temporary server lazily, at the flow's first API call: after Prefect,
Keras and Great Expectations have been imported, and with the whole server stack (FastAPI,
SQLAlchemy: seconds of CPU) imported into the client too. This starts the same app (Prefect's public
``create_app``, the same database under PREFECT_HOME) as a child process before those
imports, so it boots on the other core meanwhile. Where a server is configured
(PREFECT_API_URL, in the environment or the profile), nothing is started.

One server per process (``shared``), up until the process exits: Prefect sends a run's last
logs and events as its threads shut down, before the exit handlers run, and the server stops in
an exit handler after that. It also stops itself if its parent is killed (``server_app``), so no
server outlives the command that started it.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tasks.core.environment import environment

STARTUP_FAILED = 3  # uvicorn's exit code when it cannot bind, or its app cannot start


class EmbeddedServer:
    """One ``uvicorn flows.launch.server_app:create_app`` child process on a free local port."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.url: str | None = None
        self._env: dict[str, str] = {}

    def start(self) -> EmbeddedServer:
        """Start the server unless the settings already name one; returns immediately."""
        from prefect.settings import get_current_settings

        settings = get_current_settings()
        if settings.api.url or self.process is not None:
            return self
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

    def wait(self, timeout: float = 120.0) -> None:
        """Block until the server answers /health; say plainly if it died or never answered
        (a Prefect whose ``create_app`` no longer takes what ``server_app`` passes dies here)."""
        if self.process is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() == STARTUP_FAILED and _taken(self.url):  # the port was taken since we picked it
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
        # this one stops with the process, and joining the heartbeat thread costs up to 1 s per flow.
        # Process-wide too: a thread that does not inherit the settings context (the process-pool
        # task runner's forwarding of its workers' logs and events) falls back to Prefect's global
        # settings, read at import, and would start a temporary server of its own.
        with pointed_at(self.url), temporary_settings(updates={PREFECT_API_URL: self.url, PREFECT_UI_URL: "",
                                                               PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield

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


@contextlib.contextmanager
def pointed_at(url: str) -> Iterator[None]:
    """PREFECT_API_URL in this process's environment (what child processes inherit) and in
    Prefect's global settings, for the duration."""
    from prefect.context import refresh_global_settings_context

    try:
        with environment({"PREFECT_API_URL": url}):
            refresh_global_settings_context()
            yield
    finally:
        refresh_global_settings_context()  # back to what the environment says now


_shared: EmbeddedServer | None = None


def shared() -> EmbeddedServer:
    """This process's embedded server (started on the first call unless a server is configured),
    stopped when the process exits, after Prefect has sent the last logs and events."""
    global _shared
    if _shared is None:
        _shared = EmbeddedServer().start()
        atexit.register(_shared.stop)
    return _shared


def _taken(url: str) -> bool:
    """Whether something else listens on the port of ``url`` (then a new port is worth a try)."""
    with contextlib.closing(socket.socket()) as sock:
        try:
            sock.bind(("127.0.0.1", int(url.rsplit(":", 1)[1].split("/")[0])))
        except OSError:
            return True
    return False


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
