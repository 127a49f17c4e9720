"""`descent train --nproc N`: the same command line on N processes of this machine,
started by torchrun (PyTorch's own launcher, `python -m torch.distributed.run`):

    torchrun --standalone --nproc-per-node N -m descent train ...   (without --nproc)

--standalone gives the rendezvous a free local port. Every process inherits
GOMP_SPINCOUNT (distributed/threads.py) and, unless set, OMP_NUM_THREADS = the usable
cores / N.
torchrun reports any non-zero exit as a failure (its own status 1); when every failed
process ended with the same status of descent's (2 bad input, 130 SIGINT, 143
SIGTERM), that status is this command's, so Ctrl-C still exits 130; a signal to
this process is relayed by torchrun to every process, and exits 128 + its number.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from descent.distributed.threads import prepare_openmp, usable_cores
from descent.options import check_bounds

DESCENT_STATUSES = {2, 130, 143}


def torchrun_args(argv: Sequence[str], nproc: int) -> list[str]:
    """torchrun's arguments for `descent ARGV` on nproc processes, --nproc removed."""
    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            rest.append(arg)
    return ["--standalone", "--nproc-per-node", str(nproc), "-m", "descent", *rest]


def launch(argv: Sequence[str], nproc: int) -> int:
    """Run `descent ARGV` under torchrun on nproc processes; the exit status."""
    check_bounds("nproc", nproc)
    prepare_openmp()
    if not os.environ.get("OMP_NUM_THREADS"):  # torchrun would set 1 and say so
        os.environ["OMP_NUM_THREADS"] = str(max(1, usable_cores() // nproc))
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    try:
        run(get_args_parser().parse_args(torchrun_args(argv, nproc)))
    except SignalException as e:  # torchrun passed it to the processes and waited for them
        return 128 + int(e.sigval)
    except ChildFailedError as e:
        codes = {f.exitcode for f in e.failures.values()}
        return codes.pop() if len(codes) == 1 and codes <= DESCENT_STATUSES else 1
    return 0
