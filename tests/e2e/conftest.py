"""One real Prefect server per test session (``prefect server start`` on 127.0.0.1)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Api:
    """A tiny REST client for the server's API (what the UI itself reads)."""

    def __init__(self, url: str):
        self.url = url  # .../api

    def call(self, method: str, path: str, body: dict | None = None):
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")


@pytest.fixture(scope="session")
def prefect_server():
    port, home = _free_port(), tempfile.mkdtemp(prefix="keras-flows-e2e-prefect-")
    env = {**os.environ, "PREFECT_HOME": home, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_API_URL": "", "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api"}
    log = open(os.path.join(home, "server.log"), "w")
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                               "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    api = Api(f"http://127.0.0.1:{port}/api")
    deadline = time.time() + 90
    while True:
        try:
            api.call("GET", "/health")
            break
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError(f"prefect server did not start; see {log.name}") from None
            time.sleep(0.5)
    yield api
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


def _fresh_prefect_workers() -> None:
    """Send what Prefect's log and event workers hold, and let the next ones start anew: its
    events worker for a running server is one per process, bound to the server it first sent
    to, so the flows of a test that switches servers would send their events elsewhere (task
    runs are recorded from events). The CLI runs one server per process and needs none of this."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=30)
    EventsWorker.drain_all(timeout=30)


@pytest.fixture
def on_server(prefect_server):
    """Send the flows run in this test to the real server."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    _fresh_prefect_workers()
    with temporary_settings(updates={PREFECT_API_URL: prefect_server.url}):
        yield prefect_server
        _fresh_prefect_workers()
