"""How the processes of a run get memory: freed memory goes back to the system, and big new
arrays are not held up by the kernel compacting memory for huge pages.

glibc raises its mmap threshold to the size of each large block freed (up to 32 MB), so after
the first free a column of a million rows lives on the heap, and the heap keeps what is freed:
the flow's process then peaks higher than it needs. ``tune_memory`` fixes the threshold with
glibc's ``mallopt``: every block of 1 MiB or more is then mapped on its own and returned when
freed. The flow's process calls it on importing ``tasks.store.dataset``, the Great Expectations
helper when it starts.

Fixing the mmap threshold also stops glibc's dynamic trim threshold, which otherwise grows with
it (to twice the mmap threshold). Where ``mallopt`` ran before any large free (the command line
imports the registry while checking its options), the trim threshold stayed at its 128 KiB
default: the heap gave its top back to the kernel after nearly every training step and took it
again on the next, and training ran at half speed. So ``tune_memory`` sets the trim threshold
too, to the top of glibc's own dynamic range (64 MiB), whenever it is called.

numpy asks the kernel for transparent huge pages on every array of 4 MB or more. Where the
kernel's THP defrag setting is ``madvise`` (a common default), each such request may stall the
first write to the array while the kernel compacts memory, and the data stages write hundreds
of MB of fresh arrays. numpy's documented switch, ``NUMPY_MADVISE_HUGEPAGE=0``, read when numpy
is imported, leaves the kernel's own setting to decide: the command line sets it before
anything imports numpy (``without_huge_page_advice``), and the processes it starts inherit it.
Library use keeps numpy's default unless the variable is set.
"""
from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers, from glibc's malloc.h
THRESHOLD = 1 << 20
TRIM_THRESHOLD = 64 << 20
HUGE_PAGE_ADVICE = "NUMPY_MADVISE_HUGEPAGE"


def tune_memory() -> None:
    """Fix glibc's mmap threshold at 1 MiB (not glibc, as on macOS or musl: nothing to do)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(M_MMAP_THRESHOLD, THRESHOLD)
            libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        except (OSError, AttributeError):
            pass


def without_huge_page_advice() -> None:
    """Turn numpy's huge-page advice off for this process and its children, unless the user set
    it; call before numpy's import (afterwards numpy has read it: then nothing changes)."""
    os.environ.setdefault(HUGE_PAGE_ADVICE, "0")
