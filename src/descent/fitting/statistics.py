"""Goodness of fit and parameter uncertainty, defined exactly as lmfit defines them
(lmfit.minimizer.MinimizerResult._calculate_statistics), for weighted or plain fits.

With r the (weighted) residuals at the optimum, n rows and p free parameters:

    chisqr = sum(r^2)                       nfree  = n - p
    redchi = chisqr / max(1, nfree)
    aic    = n log(chisqr / n) + 2 p        bic    = n log(chisqr / n) + log(n) p
    (chisqr floored at 1e-250 n inside the logarithms, as lmfit does)

    covariance = (J^T J)^-1                 with absolute sigmas
               = (J^T J)^-1 * redchi        otherwise (curve_fit's absolute_sigma=False,
                                            lmfit's scale_covar=True)

J is the Jacobian of the weighted residuals with respect to the free parameters,
decomposed as in levenberg.decompose (J^T J is never formed). A confidence interval
at probability P is b +- t_ppf((1 + P) / 2, nfree) * stderr.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from descent.fitting.distributions import ONE_SIGMA, t_interval_factor
from descent.fitting.levenberg import EPS, decompose

LEVELS = (ONE_SIGMA, 0.95)  # 68.3 % (one sigma) and 95 %


@dataclass
class FitStatistics:
    """The numbers lmfit reports for a fit, over the free parameters `names`."""

    ndata: int
    nvarys: int
    nfree: int
    chisqr: float
    redchi: float
    aic: float
    bic: float
    names: list[str]
    covariance: np.ndarray  # (nvarys, nvarys), NaN when not estimable (see note)
    stderr: dict[str, float]
    absolute_sigma: bool = False
    note: str = ""  # why the covariance is NaN, or ""
    correlation: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        se = np.sqrt(np.diag(self.covariance))
        with np.errstate(invalid="ignore", divide="ignore"):
            self.correlation = self.covariance / np.outer(se, se)


def goodness_of_fit(chisqr: float, ndata: int, nvarys: int) -> dict[str, float]:
    """chisqr, redchi, aic, bic and nfree, exactly as lmfit computes them."""
    nfree = ndata - nvarys
    redchi = chisqr / max(1, nfree)
    floored = max(chisqr, 1e-250 * ndata)
    neg2_log_likelihood = ndata * math.log(floored / ndata)
    return {
        "chisqr": floored,
        "redchi": redchi,
        "aic": neg2_log_likelihood + 2 * nvarys,
        "bic": neg2_log_likelihood + math.log(ndata) * nvarys,
        "nfree": nfree,
    }


def unscaled_covariance(jt: torch.Tensor) -> tuple[np.ndarray, str]:
    """((J^T J)^-1, note) from J^T (p, n), as D^-1 V S^-2 V^T D^-1 from the SVD of the
    column-equilibrated J; NaN, with the reason in `note`, when J is rank deficient."""
    p, n = jt.shape
    nan = np.full((p, p), math.nan)
    if n < p:
        return nan, f"{n} observations for {p} free parameters: too few to estimate them"
    if not math.isfinite(float(jt.sum())):
        return nan, "the Jacobian is not finite at the solution"
    d, s, vh, _ = decompose(jt.cpu(), torch.zeros(n, dtype=jt.dtype))
    if s[-1] <= s[0] * max(n, p) * EPS:
        return nan, (
            "the Jacobian is rank deficient: some parameters are not identifiable from these "
            "data (redundant, or without effect on the predictions)"
        )
    w = vh.T / s / d[:, None]  # (J^T J)^-1 = w w^T
    return w @ w.T, ""


def fit_statistics(
    r: torch.Tensor, jt: torch.Tensor, names: Sequence[str], absolute_sigma: bool = False
) -> FitStatistics:
    """lmfit's statistics from the weighted residuals r (n,) and their Jacobian J^T
    (p, n) over the free parameters `names`, at the optimum."""
    p, n = jt.shape
    gof = goodness_of_fit(float(r @ r), n, p)
    cov, note = unscaled_covariance(jt)
    if not absolute_sigma:
        if gof["nfree"] <= 0 and not note:
            cov, note = (
                np.full((p, p), math.nan),
                (
                    f"{n} observations for {p} free parameters: no degrees of freedom left to "
                    "scale the covariance (give absolute sigmas, or more rows)"
                ),
            )
        cov = cov * gof["redchi"]
    se = np.sqrt(np.diag(cov))
    return FitStatistics(
        ndata=n,
        nvarys=p,
        nfree=gof["nfree"],
        chisqr=gof["chisqr"],
        redchi=gof["redchi"],
        aic=gof["aic"],
        bic=gof["bic"],
        names=list(names),
        covariance=cov,
        stderr=dict(zip(names, se.tolist(), strict=True)),
        absolute_sigma=absolute_sigma,
        note=note,
    )


def t_intervals(
    values: Mapping[str, float],
    stderr: Mapping[str, float],
    nfree: int,
    levels: Sequence[float] = LEVELS,
) -> dict[str, list[tuple[float, float, float]]]:
    """{name: [(probability, low, high), ...]}: b -+ t_ppf((1 + P) / 2, nfree) * stderr
    for each name in `stderr` (a fixed parameter, stderr 0, gives (b, b))."""
    ks = [(p, t_interval_factor(p, max(nfree, 1))) for p in levels]
    return {
        name: [(p, values[name] - k * se, values[name] + k * se) for p, k in ks]
        for name, se in stderr.items()
    }
