"""CPU threads: how many, and how they wait. Torch-free: the wait policy must be in the
environment before torch starts OpenMP, so the CLI calls `prepare_openmp` first.

What made a small run collapse on a busy machine (bench/threads.py measures it): OpenMP's
worker threads spin-wait between parallel regions (GNU libgomp, torch's runtime on
Linux: 300,000 spins by default), and torch's per-batch operations end a region every
few microseconds, so with as many threads as cores and other programs busy, the
spinning threads take the cores the work needs and each region waits for a thread
that is descheduled. Sleeping at once instead (OMP_WAIT_POLICY=PASSIVE) fixes that but
makes a quiet machine 2x slower: every region then waits for a thread to wake.

The default here, measured both ways on this 2-core machine:

- threads: the cores this process may use (os.sched_getaffinity, not os.cpu_count: a
  container or taskset limits them), divided among the run's processes on this machine
  (LOCAL_WORLD_SIZE); a single process also leaves out the cores other programs are
  busy on right now (the runnable tasks of /proc/loadavg, an instant count, unlike the
  load averages, which still hold the last minute's runs). Busy: 1 thread, no waiting.
- wait: GOMP_SPINCOUNT=10000, a spin of some microseconds, as fast as spinning on a
  quiet machine and far cheaper than a full spin when the machine gets busy later.

The user's OMP_WAIT_POLICY, GOMP_SPINCOUNT, OMP_NUM_THREADS and --threads are kept.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

from descent.distributed.process import Process
from descent.options import check_bounds

SPINCOUNT = "10000"  # libgomp's spins before a waiting thread sleeps (its default 300,000)


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS and Windows have no affinity mask
        return max(1, os.cpu_count() or 1)


def others_running(loadavg: Path = Path("/proc/loadavg")) -> int:
    """Tasks of other programs runnable at this instant (Linux; 0 elsewhere): the fourth
    field of /proc/loadavg ("running/total") less this process's reading thread."""
    try:
        running = int(loadavg.read_text().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return 0
    return max(0, running - 1)


def default_threads(process: Process | None = None, busy: int | None = None) -> int:
    """The usable cores shared out among this machine's processes of the run; a single
    process leaves out the `busy` ones (None: `others_running()`)."""
    process = process or Process.from_env()
    cores = usable_cores()
    n = cores // max(1, process.local_world_size)
    if process.local_world_size == 1:  # the run's own processes are not "others"
        n = min(n, cores - (others_running() if busy is None else busy))
    return max(1, n)


def prepare_openmp(environ: MutableMapping[str, str] | None = None) -> None:
    """GOMP_SPINCOUNT=10000 unless the user chose a wait policy or a spin count. Only
    effective before torch (and its OpenMP runtime) is loaded in this process, and in
    the children it starts."""
    env = os.environ if environ is None else environ
    if "OMP_WAIT_POLICY" not in env and "GOMP_SPINCOUNT" not in env:
        env["GOMP_SPINCOUNT"] = SPINCOUNT


def set_threads(n: int | None = None) -> int:
    """Use n threads for torch's operators (None: OMP_NUM_THREADS when it is set, as
    torch and torchrun read it, else `default_threads()`); returns n."""
    import torch

    if n is None:
        given = os.environ.get("OMP_NUM_THREADS", "")
        n = int(given) if given.isdigit() and int(given) > 0 else default_threads()
    check_bounds("threads", n)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
