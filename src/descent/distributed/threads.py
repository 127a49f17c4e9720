"""CPU threads: how many, and how they wait. Torch-free: the wait policy must be in the
environment before torch starts OpenMP, so the CLI calls `prepare_openmp` first.

What made a small run collapse on a busy machine (bench/threads.py measures it): OpenMP's
worker threads spin-wait between parallel regions by default (GNU libgomp: ~0.3 ms of
spinning; torch's tiny per-batch operations end a region every few microseconds), so
with as many threads as cores and other programs busy, the spinning threads take the
cores the work needs, and each region waits for a thread that is descheduled. The
default here: OMP_WAIT_POLICY=PASSIVE (threads sleep at once when idle), and the cores
this process may use (os.sched_getaffinity, not os.cpu_count: a container or taskset
limits them) divided among the processes of the run on this machine (LOCAL_WORLD_SIZE).
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

from descent.distributed.process import Process
from descent.options import check_bounds


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS and Windows have no affinity mask
        return max(1, os.cpu_count() or 1)


def default_threads(process: Process | None = None) -> int:
    """The usable cores shared out among this machine's processes of the run."""
    process = process or Process.from_env()
    return max(1, usable_cores() // max(1, process.local_world_size))


def prepare_openmp(environ: MutableMapping[str, str] | None = None) -> None:
    """OMP_WAIT_POLICY=PASSIVE unless the user set one. Only effective before torch
    (and its OpenMP runtime) is loaded in this process, and in the children it starts."""
    env = os.environ if environ is None else environ
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def set_threads(n: int | None = None) -> int:
    """Use n threads for torch's operators (None: `default_threads()`); returns n."""
    import torch

    if n is None:
        n = default_threads()
    check_bounds("threads", n)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
