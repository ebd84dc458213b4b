"""How the processes of a run get memory: freed memory goes back to the system, and new arrays
are not held up by the kernel compacting memory for huge pages.

glibc raises its mmap threshold to the size of each large block freed (up to 32 MB), so after
the first free a column of a million rows (8 MB) lives on the heap, and the heap keeps what is
freed: the million-row flow's process peaked ~60 MB higher (1,138-1,170 MiB against
1,089-1,101 in three runs each). A threshold that is set stays fixed: every block of 1 MiB or
more is then mapped on its own and returned when freed.

numpy asks the kernel for transparent huge pages on every array of 4 MB or more. Where the
kernel's THP defrag setting is ``madvise`` (this VM's and a common default), each such request
may stall the first write to the array while the kernel compacts memory: scaling the 70,000
Fashion-MNIST images (a fresh 220 MB array) took 1.13-1.38 s with the advice and 0.36-0.63 s
without it, four runs each, interleaved. Without the advice the kernel's own setting decides.

The flow's process sets both on importing ``tasks.store.dataset``, the Great Expectations helper when
it starts.
"""
from __future__ import annotations

import ctypes
import sys

M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h
THRESHOLD = 1 << 20


def tune_memory() -> None:
    """Fix glibc's mmap threshold at 1 MiB (not glibc, as on macOS or musl: nothing to do), and
    stop numpy's huge-page advice."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, THRESHOLD)
        except (OSError, AttributeError):
            pass
    import numpy as np

    advise = getattr(getattr(np, "_core", None) and np._core.multiarray, "_set_madvise_hugepage", None)
    if advise is not None:  # numpy's switch for it (also the NUMPY_MADVISE_HUGEPAGE variable)
        advise(False)
