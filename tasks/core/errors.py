"""Failures the person running a flow can fix, told apart from the program's own.

An ``InputError`` is caused by the input or the options: a table with a text value in a
number column, a raw file that fails its checksum, a search space that cannot be searched, a
learning rate at which training diverges. Its message says what is wrong, where (file,
column, rows, values) and what to do; the CLI prints it alone, with no traceback, and exits 2.
Every other exception is a bug or an outage: traceback, exit 1. The Prefect run records both
in full either way.
"""
from __future__ import annotations

import numpy as np

MAX_EXAMPLES = 5  # offending values or rows named in a message; the rest are counted


class InputError(Exception):
    """Bad data or options: ``str(error)`` is the whole message a person needs."""


class DataError(InputError, ValueError):
    """A file or table the pipeline cannot use as it is."""


class OptionError(InputError, ValueError):
    """An option (or a combination of options) that cannot work."""


def rows_text(rows, total: int | None = None) -> str:
    """``rows 3, 17, 20 and 2 more``: 1-based data rows (a CSV's line is one more: the header)."""
    rows = [int(r) + 1 for r in np.asarray(rows).ravel()]
    shown = ", ".join(map(str, rows[:MAX_EXAMPLES]))
    more = len(rows) - MAX_EXAMPLES if total is None else total - min(len(rows), MAX_EXAMPLES)
    return f"row{'s' if len(rows) > 1 else ''} {shown}" + (f" and {more} more" if more > 0 else "")


def values_text(values) -> str:
    """A few values as a person reads them: ``'abc', 7.5``."""
    values = list(values)
    shown = ", ".join(repr(v.item() if isinstance(v, np.generic) else v) for v in values[:MAX_EXAMPLES])
    return shown + (f" and {len(values) - MAX_EXAMPLES} more" if len(values) > MAX_EXAMPLES else "")
