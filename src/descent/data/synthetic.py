"""Known-answer data: the book's roller-coaster, and friends."""

from __future__ import annotations

import torch


def roller_coaster(
    seed: int = 42, n: int = 20, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """The book's roller-coaster: speed measured once a second over the top of a hump.

        time  = 0, 1, ..., n-1
        speed = randn(n) * 3 + 0.75 * (time - 9.5)**2 + 1

    Returns (time, speed), each (n,). The noise comes from a generator seeded
    with `seed`, so the same seed gives the same data.
    """
    gen = torch.Generator().manual_seed(seed)
    time = torch.arange(0, n).to(dtype)
    speed = torch.randn(n, generator=gen, dtype=dtype) * 3 + 0.75 * (time - 9.5) ** 2 + 1
    return time, speed


def quadratic(t: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """The book's model: a*t**2 + b*t + c. t (n,), params (3,) -> (n,)."""
    a, b, c = params
    return a * (t**2) + (b * t) + c
