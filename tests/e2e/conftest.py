"""One real Prefect server per test session (``prefect server start`` on 127.0.0.1)."""
from __future__ import annotations

import pytest

from tests.services import prefect_server as started_server


@pytest.fixture(scope="session")
def prefect_server():
    with started_server() as api:
        yield api


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
