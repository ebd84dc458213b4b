"""The flows' parameters as a deployment shows them: one flat parameter per setting, each described.

A deployment's run can then override one setting (``prefect deployment run regression/housing
--param epochs=3``, the UI's run form, a schedule's parameters) and keep the others; Prefect reads
each parameter's description from the flow's docstring ("Args:", Google style), which
``described`` writes from one table, so the four flows that train say the same thing.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TypeVar

from tasks.core.params import TRAINING_HELP

F = TypeVar("F", bound=Callable)

DATA_HELP = {
    "data": "your own table (a CSV or Parquet path or URL) instead of the course's dataset",
    "target": "with data: the label or value column",
    "categorical": "with data: columns to encode as categories (empty: the columns that hold text)",
    "numeric": "with data: columns to use as numbers, not categories",
    "missing": "with data: missing feature values: refuse (the default, naming them) or impute (the train rows' "
               "median, or most frequent category)",
    "drop_constant": "with data: drop the features constant on the train rows (default: keep them, scaled by 1)",
    "scale_target": "regression: learn the target standardised on the train rows (the model still answers in "
                    "the target's units): auto (yes for your own table, no for the course's housing), yes or no",
    "stream": "read, check, split, scale, train and score the table a row group at a time, never whole in "
              "memory: true, false, or empty (when its values would take over 1 GiB)",
    "workers": "a streamed table's checks and the scaler's moments read in this many parts side by side, on the "
               "flow's task runner (threads of its process by default)",
    "artifacts": "the artifact store: a folder (relative to the worker's working directory), an absolute path, "
                 "or a URL such as s3://bucket/prefix",
    "force": "re-run every stage, ignoring the cache",
}


def described(**more: str) -> Callable[[F], F]:
    """Append an "Args:" section to the function's docstring for each of its parameters that
    ``TRAINING_HELP``, ``DATA_HELP`` or ``more`` describes (apply below ``@flow``)."""
    table = {**TRAINING_HELP, **DATA_HELP, **more}

    def decorate(fn: F) -> F:
        lines = [f"    {name}: {table[name]}" for name in inspect.signature(fn).parameters if name in table]
        fn.__doc__ = inspect.cleandoc(fn.__doc__ or "") + "\n\nArgs:\n" + "\n".join(lines) + "\n"
        return fn

    return decorate
