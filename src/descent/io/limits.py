"""Memory checked before anything large is allocated: a model's size from its shapes
against what the machine has free.

    need = model_bytes(lambda: MLP(784, hidden, 10)) * TRAINING_COPIES
    check_memory(need, f"an mlp with --hidden {hidden}", "use a smaller --hidden")

The shapes come from building the model on torch's "meta" device, which records shapes
and allocates nothing, so `--hidden 1000000000` or a model.json that claims 10^9 pixels
is refused in microseconds instead of after gigabytes. What is free is data/limits.py's
`available_memory` (MemAvailable, lowered to a cgroup's limit), which also bounds a data
set before it is decoded.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from descent.data.limits import available_memory
from descent.errors import ConfigError, DescentError

# Copies of a model's parameters that exist while it trains: the parameters, their
# gradients, two Adam moments, DivergenceGuard's two snapshots, EarlyStopping's best
# copy and a checkpoint's serialised bytes. Loading a model for prediction needs two
# (the file's bytes and the tensors).
TRAINING_COPIES = 8
LOADING_COPIES = 2


def model_bytes(build: Callable[[], torch.nn.Module]) -> int:
    """The bytes of the parameters and buffers of the model `build()` makes, found by
    building it on the meta device (nothing is allocated)."""
    with torch.device("meta"):
        model = build()
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def check_memory(
    need: int, what: str, remedy: str, error: type[DescentError] = ConfigError
) -> None:
    """Refuse `what` when it needs more than the memory available, saying both figures
    and `remedy` (the option that changes it)."""
    available = available_memory()
    if need > available:
        raise error(
            f"{what} would need about {format_bytes(need)} of memory, and this machine has "
            f"{format_bytes(available)} available (MemAvailable in /proc/meminfo); {remedy}"
        )


def format_bytes(n: float) -> str:
    """1536 -> '1.5 KB'; 3e12 -> '2,794.0 GB'."""
    for unit, size in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{int(n)} bytes"
