"""The CLI's early-started embedded server: a real Prefect server, started and stopped cleanly."""
import socket
import urllib.request

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings
from prefect.utilities.urls import url_for

from flows.launch.embedded import EmbeddedServer


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
    import flows.launch.embedded as embedded

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


def test_the_private_names_the_project_relies_on_still_exist():
    from flows.launch.embedded import check_prefect
    from tasks.model.keras_compat import check

    check_prefect()  # raises, naming what is gone, on a Prefect without it
    check()  # the same for Keras's seed generator and TensorBoard's batch flags


def test_a_keras_without_the_private_seed_generator_is_refused_by_name(monkeypatch):
    from keras.src.random import seed_generator

    from tasks.model import keras_compat

    monkeypatch.delattr(seed_generator, "python_random")
    keras_compat.check.cache_clear()
    try:
        with pytest.raises(keras_compat.KerasIncompatible, match="seed_generator.python_random"):
            keras_compat.check()
    finally:
        monkeypatch.undo()
        keras_compat.check.cache_clear()
