"""A parametric function with named scalar parameters: the book's `f(t, params)`.

    def f(t, params):
        a, b, c = params
        return a * t**2 + b * t + c

    model = FunctionModel(f, names=["a", "b", "c"], init=[1.0, 0.5, 0.1])
    model(t)          # (n,) -> (n,)

The parameters live in one vector `params` of shape (k,), exactly as in the
book, so a step costs the same few tensor operations as the hand-written loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from descent.errors import ConfigError


class FunctionModel(nn.Module):
    """`preds = f(x, params)` with `params` a (k,) vector of named scalars [1 init, 2 predict]."""

    def __init__(
        self,
        f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        names: Sequence[str],
        init: Sequence[float] | torch.Tensor,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        init = torch.as_tensor(init, dtype=dtype).detach().clone().reshape(-1)
        if not init.is_floating_point():
            init = init.to(torch.get_default_dtype())
        names = list(names)
        if len(names) != init.numel():
            raise ConfigError(
                f"{len(names)} parameter names ({', '.join(names)}) but {init.numel()} "
                "initial values: give one initial value per parameter"
            )
        if len(set(names)) != len(names):
            raise ConfigError(f"parameter names must be distinct, got {names}")
        self.f = f
        self.names = names
        self.params = nn.Parameter(init)  # (k,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.f(x, self.params)

    def values(self) -> dict[str, float]:
        """The current parameters as {name: float}."""
        return dict(zip(self.names, self.params.detach().cpu().tolist(), strict=True))

    def extra_repr(self) -> str:
        fname = getattr(self.f, "__name__", type(self.f).__name__)
        vals = ", ".join(f"{k}={v:.6g}" for k, v in self.values().items())
        return f"f={fname}, params({len(self.names)}): {vals}"
