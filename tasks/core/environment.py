"""Environment variables set for a while: what processes started meanwhile inherit (worker
processes read their thread limits and the API they report to this way)."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def environment(changes: dict[str, str]) -> Iterator[None]:
    """``changes`` in ``os.environ`` for the duration; each key back to its value (or its
    absence) afterwards. Only these keys are touched: other threads never see the rest change."""
    saved = {name: os.environ.get(name) for name in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
