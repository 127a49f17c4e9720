"""Confidence and prediction bands of a fitted curve (`descent predict RUN DATA.csv`,
the shaded band of fit.png), by the delta method, as lmfit's
ModelResult.eval_uncertainty computes them.

With g the gradient of the model at a new x with respect to the free parameters
(autograd, where lmfit uses central differences of 1% of a standard error), C the
fit's covariance and k = t_ppf((1 + P) / 2, nfree) for probability P:

    confidence half-width  = k sqrt(g^T C g)                  where the curve lies
    prediction half-width  = k sqrt(g^T C g + s_new^2)        where a new row lies

s_new^2 is lmfit's redchi (the residual variance of an unweighted fit) unless the new
rows' sigmas are given: then sigma_new^2, times redchi when the fit's sigmas were
relative (absolute_sigma False), as in curve_fit's convention.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from descent.fitting.distributions import ONE_SIGMA, t_interval_factor
from descent.fitting.fixed import FreeParameters
from descent.fitting.levenberg import Residuals
from descent.fitting.solve import LeastSquaresFit
from descent.fitting.weights import check_sigma


@dataclass
class Bands:
    """y_hat (m,) and the half-widths (m,) of its bands at `probability`."""

    y_hat: torch.Tensor
    confidence: torch.Tensor
    prediction: torch.Tensor
    probability: float


def model_gradient(fit: LeastSquaresFit, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(f(x, b) (m,), its gradient over the free parameters (m, p_free)) at the fit."""
    p = fit.problem
    f_free = FreeParameters(p.names, fit.fixed).function(p.f)
    b = torch.tensor([fit.params[n] for n in fit.free], dtype=torch.float64)
    zeros = torch.zeros(len(x), dtype=torch.float64, device=x.device)
    res = Residuals(f_free, x, zeros, p.elementwise)
    y_hat = res(b)  # f - 0
    return y_hat, res.jacobian_t().T


def delta_method_variance(grad: torch.Tensor, covariance: torch.Tensor) -> torch.Tensor:
    """diag(G C G^T), (m,), for G (m, p) and C (p, p): the variance of f at each row."""
    return ((grad @ covariance) * grad).sum(-1)


def bands(
    fit: LeastSquaresFit,
    x: torch.Tensor,
    probability: float = ONE_SIGMA,
    sigma: torch.Tensor | None = None,
) -> Bands:
    """The fitted curve at new inputs x ((m,) or (m, d)) with its confidence band and
    prediction band at `probability` (a level >= 1 counts sigmas, as in lmfit)."""
    if probability >= 1:
        probability = math.erf(probability / math.sqrt(2))
    stats = fit.statistics
    y_hat, grad = model_gradient(fit, x)
    cov = torch.as_tensor(stats.covariance, dtype=torch.float64, device=grad.device)
    var_f = delta_method_variance(grad, cov)
    if sigma is None:
        noise = torch.full_like(var_f, stats.redchi)
    else:
        s = check_sigma(sigma, "sigma of the new rows", len(x)).to(var_f.device)
        noise = s * s * (1.0 if stats.absolute_sigma else stats.redchi)
    k = t_interval_factor(probability, max(stats.nfree, 1))
    return Bands(
        y_hat=y_hat,
        confidence=k * var_f.sqrt(),
        prediction=k * (var_f + noise).sqrt(),
        probability=probability,
    )
