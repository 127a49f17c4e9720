"""The process group of a run on several processes (torchrun's env:// contract).

`Group.start(device)` joins the group only when WORLD_SIZE > 1: gloo for CPU tensors,
nccl for CUDA. What the run needs from it, and nothing more:

    wrap(model)      DistributedDataParallel: gradients averaged over processes in backward
    sum(values)      an exact all_reduce of sums (float64): losses x counts, metric sums
    agree(code)      the largest of the processes' codes: a stop anywhere stops everyone
    barrier()        rank 0 has written its files; the others wait for it
    close(...)       the teardown measured to exit cleanly: the DDP wrapper and optimizer
                     deleted first, then barrier(), then destroy_process_group()
"""

from __future__ import annotations

import datetime
import gc
import signal
import threading

import torch
import torch.distributed as dist
from torch import nn

from descent.distributed.process import Process
from descent.errors import ConfigError

# A process that waits longer than this for the others (one died without torchrun
# noticing, a rank stuck in its data) fails with an error instead of hanging for ever.
TIMEOUT = datetime.timedelta(minutes=10)


class Group:
    """This process's membership of the run's process group."""

    def __init__(self, process: Process, device: torch.device) -> None:
        self.process, self.device = process, device
        self.backend = "nccl" if device.type == "cuda" else "gloo"
        # gloo reduces CPU tensors; nccl CUDA tensors on this process's GPU
        self.reduce_device = device if self.backend == "nccl" else torch.device("cpu")

    @classmethod
    def start(cls, device: torch.device, process: Process | None = None) -> Group | None:
        """Join the group (None for a single process: no group at all)."""
        process = process or Process.from_env()
        if not process.distributed:
            return None
        if not dist.is_available():
            raise ConfigError("this torch build has no torch.distributed: run one process")
        if device.type == "mps":
            raise ConfigError("--device mps runs one process: torch has no MPS process group")
        group = cls(process, device)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group(
                group.backend,
                init_method="env://",
                rank=process.rank,
                world_size=process.world_size,
                timeout=TIMEOUT,
            )
        return group

    @property
    def rank(self) -> int:
        return self.process.rank

    @property
    def world_size(self) -> int:
        return self.process.world_size

    def describe(self) -> str:
        return f"{self.world_size} processes ({self.backend})"

    def wrap(self, model: nn.Module) -> nn.Module:
        """The model inside DistributedDataParallel (parameters broadcast from rank 0)."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """values summed over the processes (float64, on values' device)."""
        t = values.detach().to(self.reduce_device, torch.float64).clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.to(values.device)

    def agree(self, code: int) -> int:
        """The largest of every process's code (0: no process asks anything)."""
        t = torch.tensor([code], dtype=torch.int64, device=self.reduce_device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def barrier(self) -> None:
        if dist.is_initialized():
            dist.barrier()

    def close(self, clean: bool = True) -> None:
        """Leave the group: the caller has dropped its DDP wrapper and optimizer (with
        torch 2.13 and gloo a wrapper alive at destroy_process_group aborted or hung
        ~8 % of exits); collect them, wait for every process, then destroy. After an
        error (`clean` False) the others may be inside another collective: no barrier,
        which could only time out; torchrun ends them when this process exits."""
        gc.collect()
        if dist.is_initialized():
            if clean:
                _keep_exit_status()
                dist.barrier()
            dist.destroy_process_group()


def _keep_exit_status() -> None:
    """The run has ended and its exit status is decided (0, or 130 for everyone after an
    agreed interrupt). torchrun sends SIGTERM to the processes still running once one has
    exited non-zero; a process in its last milliseconds would then exit 143 instead of
    130. So from here SIGTERM is ignored; the process is about to exit anyway."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
