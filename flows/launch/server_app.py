"""The ASGI app of the embedded server: Prefect's own, built through its public factory.

``create_app(ephemeral=True, final=True)`` is what Prefect's embedded server runs (no UI,
no background services but those a run needs); naming the arguments here replaces the
private ``PREFECT__SERVER_*`` environment variables uvicorn's plain factory would need.
The server stops itself when the CLI that started it is gone (killed, so that its ``stop``
never came): no server is left orphaned by a crash.
"""
from __future__ import annotations

import os

PARENT_ENV = "KERAS_FLOWS_SERVER_PARENT"  # the pid of the CLI that started this server


def create_app():
    from prefect.server.api.server import create_app as prefect_app

    if os.environ.get(PARENT_ENV):
        _stop_with_parent(int(os.environ[PARENT_ENV]))
    return prefect_app(ephemeral=True, final=True)


def _stop_with_parent(parent: int) -> None:
    """SIGTERM this process (uvicorn's clean shutdown) once its parent has died."""
    import signal
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="stop-with-parent", daemon=True).start()
