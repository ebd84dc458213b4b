"""Memory that a stage frees goes back to the system, so one process can run every stage.

glibc raises its mmap threshold to the size of each large block freed (up to 32 MB), so after
the first free a column of a million rows (8 MB) lives on the heap, and the heap keeps what is
freed: the million-row flow's process peaked ~60 MB higher (1,138-1,170 MiB against
1,089-1,101 in three runs each). A threshold that is set stays fixed: every block of 1 MiB or
more is then mapped on its own and returned when freed. The flow's process sets it on
importing ``tasks.dataset``, the Great Expectations helper when it starts.
"""
from __future__ import annotations

import ctypes
import sys

M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h
THRESHOLD = 1 << 20


def return_large_frees() -> None:
    """Fix glibc's mmap threshold at 1 MiB. Not glibc (macOS, musl): nothing to do."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, THRESHOLD)
        except (OSError, AttributeError):
            pass
