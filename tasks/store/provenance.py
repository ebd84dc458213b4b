"""What a lineage record says about where an artifact came from besides its inputs: the commit,
the libraries' versions, and the Prefect flow run and task run that produced it."""
from __future__ import annotations

import contextlib
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

LIBRARIES = ("numpy", "pandas", "pyarrow", "scikit-learn", "keras", "tensorflow-cpu",
             "tensorflow", "prefect", "great-expectations")


@lru_cache(maxsize=1)
def git_version() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5, check=True)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def run_context() -> dict[str, str | None]:
    """The Prefect flow run and task run that are producing an artifact, if any."""
    try:
        from prefect.runtime import flow_run, task_run
        return {"flow_run_id": flow_run.id, "flow_name": flow_run.flow_name,
                "task_run_id": task_run.id, "task_name": task_run.task_name}
    except Exception:  # outside Prefect (plain function calls, tests)
        return {"flow_run_id": None, "flow_name": None, "task_run_id": None, "task_name": None}
