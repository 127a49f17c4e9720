"""A start no solver can move from, refused before any step (and before a run folder is
made), with the observation named: curve_fit fails there too, less clearly."""

from __future__ import annotations

import math

import torch

from descent.errors import FormulaError
from descent.fitting.levenberg import Residuals
from descent.models.function import FunctionModel


def check_start(model: FunctionModel, x: torch.Tensor, y: torch.Tensor) -> None:
    """Raise FormulaError, naming the observation, when the formula, its derivatives or
    the sum of squared residuals are not finite at the model's (starting) parameters."""
    b = model.params.detach()
    at = "at the starting values " + ", ".join(f"{k} = {v:g}" for k, v in model.values().items())
    inputs = getattr(getattr(model, "formula", None), "inputs", [])
    xs = x.reshape(len(x), -1)

    def where(k: int) -> str:
        row = ", ".join(f"{n} = {float(v):g}" for n, v in zip(inputs, xs[k], strict=False))
        return f"observation {k + 1}" + (f" ({row})" if row else "")

    with torch.no_grad():
        pred = model.f(x, b)
    bad = (~torch.isfinite(pred)).nonzero()
    if len(bad):
        k = int(bad[0])
        raise FormulaError(
            f"{at} the formula gives {float(pred[k]):g} at {where(k)}; choose starting "
            "values where it is finite (--init name=value) or leave that row out"
        )
    res = Residuals(model.f, x, y, elementwise=getattr(model, "elementwise", False))
    r = res(b)
    jt = res.jacobian_t()
    for name, row in zip(model.names, jt, strict=True):
        bad = (~torch.isfinite(row)).nonzero()
        if len(bad):
            k = int(bad[0])
            raise FormulaError(
                f"{at} the derivative with respect to {name} is {float(row[k]):g} at "
                f"{where(k)}: autograd cannot differentiate the formula there (sqrt, log or "
                "a fractional power of 0, say); leave that row out or rewrite the formula"
            )
    if not math.isfinite(float(r @ r)):
        k = int(r.abs().argmax())
        raise FormulaError(
            f"{at} the sum of squared residuals overflows (the residual at {where(k)} is "
            f"{float(r[k]):.3g}); choose starting values nearer the data (--init name=value)"
        )
