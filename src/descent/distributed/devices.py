"""--device: auto | cpu | cuda | cuda:N | mps -> the torch.device the run uses.

`auto` takes CUDA, then Apple's MPS (not for float64 work: curve fits), then the CPU.
Under torchrun each process on a machine takes its own GPU: cuda means cuda:LOCAL_RANK.
"""

from __future__ import annotations

import torch

from descent.distributed.process import Process
from descent.errors import ConfigError
from descent.options import check_device


def mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(
    name: str | torch.device = "auto", process: Process | None = None, *, float64: bool = False
) -> torch.device:
    """The device for `name`; a ConfigError when it is not on this machine. `float64`:
    the work is in float64, which MPS does not compute (auto passes it over, mps is
    refused)."""
    if isinstance(name, torch.device):
        return name
    name = check_device(name, float64)
    process = process or Process.from_env()
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif mps_available() and not process.distributed and not float64:
            name = "mps"
        else:
            return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not mps_available():
            raise ConfigError("--device mps: this machine has no Apple GPU (MPS); use cpu")
        if process.distributed:
            raise ConfigError("--device mps runs one process: torch has no MPS process group")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise ConfigError(
            f"--device {name}: no CUDA GPU is available here (torch {torch.__version__}, "
            f"CUDA build: {torch.version.cuda or 'none'}); use --device cpu or auto"
        )
    count = torch.cuda.device_count()
    index = int(name.split(":")[1]) if ":" in name else process.local_rank
    if index >= count:
        raise ConfigError(
            f"--device {name}: this machine has {count} CUDA device(s), 0..{count - 1}"
        )
    return torch.device("cuda", index)


def describe_device(device: torch.device) -> str:
    """'cpu', or 'cuda:0 (NVIDIA H200)'."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)
