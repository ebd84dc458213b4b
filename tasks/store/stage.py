"""What every stage task shares: its cache key, its code hash and its lineage fields.

A stage's cache key is (stage, input artifact hashes, parameters, code hash). The code
hash covers the stage's module *and every project module it imports, transitively*:
Prefect's TASK_SOURCE hashes only the task function's own text, so a change in a
helper would otherwise leave a stale cache. It hashes what runs, the syntax tree without
docstrings (comments never reach it), so a comment fix does not retrain every model.
"""
from __future__ import annotations

import ast
import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa

from tasks.core.faults import pause_point
from tasks.store.artifacts import ArtifactRef, ArtifactStore, stable_hash
from tasks.store.lineage import declared
from tasks.store.publish import publish

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the folder holding tasks/ and flows/
PROJECT_PACKAGES = ("tasks", "flows")


def _module_file(name: str) -> Path | None:
    base = PROJECT_ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _project_imports(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n.split(".")[0] in PROJECT_PACKAGES}


def _behaviour(tree: ast.Module) -> str:
    """The module's syntax tree without docstrings and line numbers: what changes behaviour."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body \
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False)


# CPython 3.11's AST constructor keeps its recursion depth in one per-interpreter counter, so a parse
# while another thread parses or compiles (a flow's stages side by side on its thread pool, Keras
# tracing) can fail with "SystemError: AST constructor recursion depth mismatch" (python/cpython#106905,
# fixed in later releases): ours parse one at a time, and a parse that met another thread's is retried.
_PARSING = threading.Lock()


def _parsed(source: bytes) -> ast.Module:
    for attempt in range(3):
        try:
            with _PARSING:
                return ast.parse(source)
        except SystemError as error:  # only the counter's mismatch; the source itself parsed before
            if "recursion depth mismatch" not in str(error) or attempt == 2:
                raise
    raise AssertionError("unreachable")


@cache
def code_hash(module: str) -> str:
    """sha256 over the code of ``module`` and every project module it imports."""
    seen: dict[str, str] = {}
    pending = [module]
    while pending:
        name = pending.pop()
        path = _module_file(name)
        if name in seen or path is None:
            continue
        tree = _parsed(path.read_bytes())
        pending.extend(_project_imports(tree))
        seen[name] = hashlib.sha256(_behaviour(tree).encode()).hexdigest()
    return stable_hash(seen)


def logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        from prefect import get_run_logger
        return get_run_logger()
    except Exception:
        return logging.getLogger("pipeline")


@dataclass
class StageRun:
    """One execution of a stage: where it writes and the lineage it stamps on each output."""

    store: ArtifactStore
    stage: str
    module: str
    parents: list[ArtifactRef | dict[str, Any]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    reused: bool = False  # set by run(): the outputs came from the store's cache

    @property
    def code_hash(self) -> str:
        return code_hash(self.module)

    @property
    def cache_key(self) -> str:
        parents = [p.sha256 if isinstance(p, ArtifactRef) else p for p in self.parents]
        return stable_hash({"stage": self.stage, "parents": parents, "params": self.params,
                            "seed": self.seed, "code": self.code_hash})

    @property
    def dataset(self) -> str:
        """The dataset this stage works on: recorded by its first parent artifact, or the source."""
        for parent in self.parents:
            if isinstance(parent, ArtifactRef):
                return self.store.record(parent).dataset
        return self.params.get("dataset") or Path(self.params.get("path") or "data").stem

    def _lineage(self, extra: dict[str, Any]) -> dict[str, Any]:
        return {"parents": self.parents, "params": self.params, "seed": self.seed,
                "code_hash": self.code_hash, "dataset": self.dataset, **declared(**extra)}

    def put_table(self, table: pa.Table, stage: str | None = None, **extra: Any) -> ArtifactRef:
        return self.store.put_table(table, stage or self.stage, **self._lineage(extra))

    def put_batches(self, batches, stage: str | None = None, **extra: Any) -> ArtifactRef:
        return self.store.put_batches(batches, stage or self.stage, **self._lineage(extra))

    def put_file(self, path: Path, stage: str | None = None, **extra: Any) -> ArtifactRef:
        return self.store.put_file(path, stage or self.stage, **self._lineage(extra))

    def run(self, produce: Callable[[StageRun], dict[str, ArtifactRef]], force: bool = False
            ) -> dict[str, ArtifactRef]:
        """Reuse this stage's outputs for an unchanged key; otherwise produce and remember them.

        One process at a time produces a given key (a file lock in the store): a second flow run
        of the same stage on the same folder waits, then takes the first one's outputs.
        """
        key = self.cache_key
        hit = None if force else self.store.cache_get(self.stage, key, warn=logger().warning)
        if hit is None:
            with self.store.producing(self.stage, key):
                hit = None if force else self.store.cache_get(self.stage, key, warn=logger().warning)
                if hit is None:
                    pause_point(f"stage:{self.stage}")
                    hit = produce(self)
                    self.store.cache_put(self.stage, key, hit)
                else:
                    self.reused = True
        else:
            self.reused = True
        if self.reused:
            logger().info("%s: reused cached outputs (key %s)", self.stage, key[:12])
        publish(self.dataset, hit, self.parents, self.params, self.reused)
        return hit


def reported(value: Any, run: StageRun) -> Any:
    """A task's return value; as Prefect's "Cached" state when its stage run was reused,
    so the run's graph and task list show the step as cached, as for Prefect's own cache.
    A flow that calls the task directly gets that state back: ``flows.steps.pipeline.value`` unwraps it."""
    if run.reused:
        from prefect.states import Completed

        return Completed(name="Cached", message="outputs reused from the artifact store", data=value)
    return value


def no_retry_on(*errors: type[BaseException]) -> Callable[..., bool]:
    """A Prefect retry condition: retry, unless the failure is one that repeats (bad data)."""

    def should_retry(task, task_run, state) -> bool:
        error = state.result(raise_on_failure=False)
        return not isinstance(error, errors)

    return should_retry
