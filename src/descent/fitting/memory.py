"""Freed memory kept for reuse, for loops that allocate the same large tensors each step.

fit_many's step allocates about a dozen (M, G) float64 tensors (a few megabytes each
for 10,000 groups) in the formula's forward and backward passes and frees them at its
end. glibc's malloc then returns the top of its heap to the system (its trim threshold
is twice the largest block it has mmapped, a few megabytes), so the next step faults
the same pages in again: a quarter to a third of the step's time, all of it system
time. `retain_freed_memory` raises malloc's trim and mmap thresholds so freed blocks
stay in the heap and are reused. It changes the whole process (its memory no longer
shrinks after a peak), so the library never calls it on its own: `descent fit --by`
(a process of its own) does, and so does bench/many_curves.py, to measure what the
command does. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
TRIM, MMAP = 1 << 30, 1 << 25  # 1 GiB kept before trimming; blocks up to 32 MiB from the heap


def retain_freed_memory() -> bool:
    """Keep freed heap memory in this process for reuse; True when glibc accepted it."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows): nothing to do
        return False
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM)) and bool(mallopt(M_MMAP_THRESHOLD, MMAP))
