"""The CLI's early-started embedded server: a real Prefect server, started and stopped cleanly."""
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings
from prefect.utilities.urls import url_for

import flows.launch.embedded as embedded
from flows.launch.embedded import EmbeddedServer

pytestmark = pytest.mark.slow  # whole flows, servers and browsers: the full suite, not the fast lane



def test_the_embedded_server_takes_api_calls_and_is_gone_after_stop():
    with temporary_settings(restore_defaults={PREFECT_API_URL}):  # as on a machine with no server set
        server = EmbeddedServer().start()
    try:
        assert server.process is not None and server.url.startswith("http://127.0.0.1:")
        with server.api():
            with get_client(sync_client=True) as client:
                assert client.api_url == server.url + "/"
                assert client.hello().status_code == 200
            assert url_for("flow-run", obj_id="00000000-0000-0000-0000-000000000000") is None  # no UI link
            assert get_current_settings().flows.heartbeat_frequency is None  # nobody outlives it to watch
        assert get_current_settings().flows.heartbeat_frequency is not None  # others keep Prefect's
    finally:
        server.stop()
    assert server.process is None
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{server.url}/health", timeout=2)


def test_a_port_taken_before_the_server_binds_it_is_replaced(monkeypatch):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    ports = iter([taken.getsockname()[1], embedded._free_port()])
    monkeypatch.setattr(embedded, "_free_port", lambda: next(ports))
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        server = EmbeddedServer().start()
        try:
            server.wait()
            assert server.url.endswith(f":{server.process.args[server.process.args.index('--port') + 1]}/api")
            assert str(taken.getsockname()[1]) not in server.url
        finally:
            server.stop()
            taken.close()


def test_no_server_is_started_where_settings_name_one():
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        server = EmbeddedServer().start()
        assert server.process is None
        with server.api():  # a no-op: the configured server is used as it is
            pass


def test_a_server_that_cannot_start_is_told_plainly(monkeypatch):
    """A server whose app fails at start-up (here, its database cannot be reached; a Prefect whose
    ``create_app`` no longer takes what ``server_app`` passes fails the same way) stops the run
    at once, naming the server, instead of trying port after port until its time is out."""
    monkeypatch.setenv("PREFECT_SERVER_DATABASE_CONNECTION_URL", "postgresql+asyncpg://nobody@127.0.0.1:9/none")
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        server = EmbeddedServer().start()
    try:
        with pytest.raises(RuntimeError, match="embedded Prefect server exited with code 3 before answering"):
            server.wait(timeout=60)
    finally:
        server.stop()


def test_one_server_per_process_stopped_when_the_process_exits(tmp_path):
    """``shared()`` starts the process's server once; it is gone once the process has exited."""
    script = ("import os\n"
              "os.environ.pop('PREFECT_API_URL', None)\n"
              "from flows.launch.embedded import shared\n"
              "first = shared(); first.wait()\n"
              "assert shared() is first\n"
              "print(first.process.pid, first.url, flush=True)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    pid, url = done.stdout.split()
    assert not Path(f"/proc/{pid}").exists() or "(Z)" in Path(f"/proc/{pid}/stat").read_text()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/health", timeout=2)
