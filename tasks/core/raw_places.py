"""Where raw files are looked for besides the internet: the data cache and the mirror folder.

Kept apart from ``tasks.stages.load`` (which imports Prefect, numpy and pyarrow) so that the CLI can
check ``--artifacts`` against them before it starts the embedded server and the heavy imports.
"""
from __future__ import annotations

import os
from pathlib import Path

MIRROR_ENV = "DATA_MIRROR"  # a folder holding the public files, for machines without internet
CACHE_ENV = "PIPELINE_DATA"  # the data cache (default data/): downloads and accepted files


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, "data"))
