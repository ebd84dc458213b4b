"""The ASGI app of the embedded server: Prefect's own, built through its public factory.

``create_app(ephemeral=True, final=True)`` is what Prefect's embedded server runs (no UI,
no background services but those a run needs); naming the arguments here replaces the
private ``PREFECT__SERVER_*`` environment variables uvicorn's plain factory would need.
"""
from __future__ import annotations


def create_app():
    from prefect.server.api.server import create_app as prefect_app

    return prefect_app(ephemeral=True, final=True)
