"""Whitened parameters for gradient-descent fits: one learning rate suits them all."""

from __future__ import annotations

import math

import numpy as np
import torch

from descent.fitting.levenberg import Residuals, decompose, require_finite
from descent.models.formula import FormulaModel
from descent.models.function import FunctionModel


class ScaledModel(FunctionModel):
    """The same formula in whitened parameters: b = b0 + T z, z starting at 0.

    T comes from the residual Jacobian J at the start: with J D^-1 = U S V^T
    (D the column norms), T = sqrt(n/2) D^-1 V S^-1, so the MSE's Gauss-Newton
    curvature in z is the identity. Parameters of 500 and of 1e-4, and strongly
    correlated ones (t**2, t and 1 in the roller-coaster), then move alike, and
    plain gradient descent is stable up to lr 2 (exactly so for models linear in
    their parameters)."""

    def __init__(self, model: FormulaModel, x: torch.Tensor, y: torch.Tensor) -> None:
        b0 = model.params.detach().clone()
        res = Residuals(model.f, x, y, elementwise=getattr(model, "elementwise", False))
        r = res(b0)
        jt = res.jacobian_t()
        require_finite(float(r @ r), jt)
        d, s, vh, _ = decompose(jt, r)
        s = np.maximum(s, s[0] * 1e-8) if s[0] > 0 else np.ones_like(s)
        t = math.sqrt(len(y) / 2) * (vh.T / s) / d[:, None]  # (p, p)
        f = model.f
        super().__init__(lambda x, z: f(x, self.b0 + self.t @ z), model.names, torch.zeros_like(b0))
        self.register_buffer("b0", b0)
        self.register_buffer("t", torch.from_numpy(t).to(b0.dtype))

    def unscaled(self) -> torch.Tensor:
        return (self.b0 + self.t @ self.params).detach()

    def values(self) -> dict[str, float]:
        return dict(zip(self.names, self.unscaled().tolist(), strict=True))
