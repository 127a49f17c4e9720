"""Memory limits checked before the work starts: what a data set and its model will need
against what the machine has free.

    check_fits("digits/", n=60_000, size=(28, 28), n_classes=10)  # or a DataError
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from descent.errors import DataError

# The estimate for n images of h x w pixels and k classes, in copies of each part:
DATA_COPIES = 2  # uint8 pixels: the decoded stack, and the train/valid copies a split makes
MODEL_COPIES = 4  # float32 weights (h*w per class), their gradient and two Adam moments


def available_memory() -> int:
    """Bytes that new allocations can use: MemAvailable from /proc/meminfo (else free pages
    from os.sysconf), lowered to what a cgroup (container) memory limit leaves."""
    available = _meminfo_available() or _sysconf_available() or sys.maxsize  # unknown: no limit
    try:  # cgroup v2: the limit ("max" when none) less what the group already uses
        cgroup = Path("/sys/fs/cgroup")
        limit = (cgroup / "memory.max").read_text().strip()
        if limit != "max":
            used = int((cgroup / "memory.current").read_text())
            available = min(available, int(limit) - used)
    except (OSError, ValueError):
        pass
    return available


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            line = next(line for line in f if line.startswith("MemAvailable:"))
        return int(line.split()[1]) * 1024  # the file counts kB
    except (OSError, StopIteration, ValueError, IndexError):
        return None


def _sysconf_available() -> int | None:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def check_fits(where: str | Path, n: int, size: tuple[int, int], n_classes: int) -> None:
    """Refuse (DataError, with the figures and what to change) n images of `size` whose
    pixels (uint8, DATA_COPIES) plus a linear model on them (float32 weights per pixel per
    class, MODEL_COPIES) would not fit in `available_memory()`."""
    h, w = size
    data = DATA_COPIES * n * h * w
    model = MODEL_COPIES * 4 * h * w * max(n_classes, 1)
    available = available_memory()
    if data + model > available:
        raise DataError(
            f"{where}: {n:,} images of {h}x{w} (h x w) would need about {_bytes(data + model)} of "
            f"memory ({_bytes(data)} for the pixels, {_bytes(model)} for a linear model with "
            f"{n_classes} outputs while it trains) but {_bytes(available)} is available; "
            "resize the images (e.g. to 28x28), or use fewer images or classes (--classes)"
        )


def _bytes(n: int) -> str:
    for unit, size in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"
