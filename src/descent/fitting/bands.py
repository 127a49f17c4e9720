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
relative (absolute_sigma False), as in curve_fit's convention. A weighted fit's redchi
is in units of sigma^2, not of y^2: its prediction band needs the new rows' sigmas.

What the bands need besides the model is an `Uncertainty`; `descent fit` writes it to
the run folder (uncertainty.json) and `descent predict` reads it back, checked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from descent.errors import CheckpointError
from descent.fitting.curve import CurveFit
from descent.fitting.distributions import ONE_SIGMA, t_interval_factor
from descent.fitting.fixed import FreeParameters
from descent.fitting.levenberg import Residuals
from descent.fitting.weights import check_sigma
from descent.io.files import read_json, write_json
from descent.models.function import FunctionModel

FORMAT, VERSION = "descent-fit-uncertainty", 1


@dataclass
class Uncertainty:
    """A fit's covariance and what goes with it: enough to draw its bands anywhere."""

    free: list[str]
    fixed: dict[str, float]
    covariance: list[list[float]]  # (p_free, p_free) in `free` order; NaN: not estimable
    nfree: int  # degrees of freedom: rows - free parameters
    redchi: float
    absolute_sigma: bool = False
    sigma_column: str | None = None  # the fit's --sigma column, if it was weighted
    weighted: bool = False

    @classmethod
    def of(cls, fit: CurveFit, sigma_column: str | None = None) -> Uncertainty:
        st = fit.statistics
        return cls(
            free=list(fit.free),
            fixed=dict(fit.fixed),
            covariance=np.asarray(st.covariance, dtype=np.float64).tolist(),
            nfree=st.nfree,
            redchi=st.redchi,
            absolute_sigma=fit.absolute_sigma,
            sigma_column=sigma_column,
            weighted=fit.sigma is not None,
        )

    def save(self, path: str | Path) -> None:
        write_json(path, {"format": FORMAT, "version": VERSION, **asdict(self)})

    @classmethod
    def load(cls, path: str | Path, names: Sequence[str]) -> Uncertainty:
        """Read and check uncertainty.json against the model's parameter `names`."""
        raw = read_json(path, "fit uncertainty file")

        def bad(why: str) -> CheckpointError:
            return CheckpointError(f"{path}: {why}; refit to write it again")

        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise bad(f'not a descent fit uncertainty file (expected "format": "{FORMAT}")')
        if raw.get("version") != VERSION:
            raise bad(f"version {raw.get('version')!r}, this descent reads {VERSION}")
        free, fixed, cov = raw.get("free"), raw.get("fixed"), raw.get("covariance")
        if not (isinstance(free, list) and all(isinstance(n, str) for n in free)):
            raise bad("'free' must be a list of parameter names")
        if not (isinstance(fixed, dict) and all(_number(v) for v in fixed.values())):
            raise bad("'fixed' must map parameter names to numbers")
        if sorted([*free, *fixed]) != sorted(names) or len(set(free)) != len(free):
            raise bad(
                f"its parameters ({', '.join([*free, *fixed])}) are not the model's "
                f"({', '.join(names)})"
            )
        p = len(free)
        if not (
            isinstance(cov, list)
            and len(cov) == p
            and all(isinstance(row, list) and len(row) == p for row in cov)
            and all(v is None or _number(v) for row in cov for v in row)
        ):
            raise bad(f"'covariance' must be a {p} x {p} matrix of numbers")
        nfree, redchi = raw.get("nfree"), raw.get("redchi")
        if not (isinstance(nfree, int) and not isinstance(nfree, bool)):
            raise bad("'nfree' must be an integer")
        if not (redchi is None or (_number(redchi) and redchi >= 0)):
            raise bad("'redchi' must be a number >= 0")
        sigma_column = raw.get("sigma_column")
        if sigma_column is not None and not isinstance(sigma_column, str):
            raise bad("'sigma_column' must be a column name or null")
        flags = [raw.get(k, False) for k in ("absolute_sigma", "weighted")]
        if not all(isinstance(v, bool) for v in flags):
            raise bad("'absolute_sigma' and 'weighted' must be true or false")
        return cls(
            free=free,
            fixed={k: float(v) for k, v in fixed.items()},
            covariance=[[math.nan if v is None else float(v) for v in row] for row in cov],
            nfree=nfree,
            redchi=math.nan if redchi is None else float(redchi),
            absolute_sigma=flags[0],
            sigma_column=sigma_column,
            weighted=flags[1],
        )


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass
class Bands:
    """y_hat (m,), its delta-method standard error (m,) and the half-widths (m,) of its
    bands at `probability`; `prediction` is None when it cannot be computed (`note`)."""

    y_hat: torch.Tensor
    stderr: torch.Tensor
    confidence: torch.Tensor
    prediction: torch.Tensor | None
    probability: float
    note: str = field(default="")


def model_gradient(
    model: FunctionModel, unc: Uncertainty, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(f(x, b) (m,), its gradient over the free parameters (m, p_free)) at the model's
    parameters."""
    f_free = FreeParameters(model.names, unc.fixed).function(model.f)
    values = model.values()
    b = torch.tensor([values[n] for n in unc.free], dtype=torch.float64, device=x.device)
    zeros = torch.zeros(len(x), dtype=torch.float64, device=x.device)
    res = Residuals(f_free, x, zeros, getattr(model, "elementwise", False))
    y_hat = res(b)  # f - 0
    return y_hat, res.jacobian_t().T


def delta_method_variance(grad: torch.Tensor, covariance: torch.Tensor) -> torch.Tensor:
    """diag(G C G^T), (m,), for G (m, p) and C (p, p): the variance of f at each row."""
    return ((grad @ covariance) * grad).sum(-1)


def bands(
    fit: CurveFit | tuple[FunctionModel, Uncertainty],
    x: torch.Tensor,
    probability: float = ONE_SIGMA,
    sigma: torch.Tensor | None = None,
) -> Bands:
    """The fitted curve at new inputs x ((m,) or (m, d)) with its confidence band and
    prediction band at `probability` (a level >= 1 counts sigmas, as in lmfit).

    `fit` is a fit_curve result, or (model, Uncertainty) read back from a run folder.
    `sigma` (m,): the new rows' uncertainties (needed for a weighted fit's prediction
    band)."""
    model, unc = (fit.model, Uncertainty.of(fit)) if isinstance(fit, CurveFit) else fit
    if probability >= 1:
        probability = math.erf(probability / math.sqrt(2))
    y_hat, grad = model_gradient(model, unc, x)
    cov = torch.tensor(unc.covariance, dtype=torch.float64, device=grad.device)
    var_f = delta_method_variance(grad, cov)
    k = t_interval_factor(probability, max(unc.nfree, 1))
    note, prediction = "", None
    if sigma is not None:
        s = check_sigma(sigma, "sigma of the new rows", len(x)).to(var_f.device)
        prediction = k * (var_f + s * s * (1.0 if unc.absolute_sigma else unc.redchi)).sqrt()
    elif unc.weighted:
        note = (
            "the fit was weighted by sigmas, so a new row's scatter is its own sigma: give "
            f"the new rows' sigmas ({unc.sigma_column or 'sigma'}) for the prediction band"
        )
    else:
        prediction = k * (var_f + unc.redchi).sqrt()
    return Bands(y_hat, var_f.sqrt(), k * var_f.sqrt(), prediction, probability, note)
