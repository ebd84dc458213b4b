"""What the local trial workers' template process holds before it forks them (``flows/launch/runners.py``).

Importing this module is its whole purpose, and only the template imports it (as the
forkserver's preload): every fork starts with these done.

- Keras and the trial stages (``flows.search`` and all it imports).
- Prefect's collections (entry points: prefect-dask, and so Dask), which Prefect otherwise
  loads in each worker at its first task (beside the data preparation).
- ``gc.freeze()``: the hundreds of thousands of objects imported so far are left out of every
  later collection. Keras's ``clear_session`` before each trial runs a full ``gc.collect``
  over all of them; in a fork it now only looks at what the worker made itself,
  and does not write to (and so copy) the template's shared memory pages.
"""
import gc

import keras  # noqa: F401
from prefect.plugins import load_prefect_collections

import flows.search  # noqa: F401

load_prefect_collections()
gc.freeze()
