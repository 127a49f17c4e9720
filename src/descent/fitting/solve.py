"""One least-squares fit with weights, bounds and fixed parameters, and its statistics:
the library call the `descent fit` options (--sigma, --absolute-sigma, --bounds, --fix)
map onto, and the refit inside profile-likelihood intervals.

It drives levenberg.LevenbergMarquardt directly (no Learner, no callbacks: a refit in
a profile costs only its steps), with fit_curve's rule for a poor start: a fit that
stops on "no_progress" or the step limit is retried once from the start with strong
damping (tau = 0.1, shrink = 1/3), and the better of the two is kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from descent.errors import FormulaError
from descent.fitting.bounds import at_bounds, bound_vectors, check_start
from descent.fitting.fixed import FreeParameters
from descent.fitting.levenberg import LevenbergMarquardt, NotFinite, Residuals
from descent.fitting.statistics import FitStatistics, fit_statistics
from descent.fitting.weights import check_sigma


@dataclass
class Problem:
    """y ~ f(x, b) with optional per-row uncertainties sigma (n,)."""

    f: Callable
    x: torch.Tensor  # (n,) or (n, d)
    y: torch.Tensor  # (n,)
    names: list[str]
    sigma: torch.Tensor | None = None
    elementwise: bool = True  # f's output k depends on row k alone (every formula)

    def __post_init__(self) -> None:
        if self.sigma is not None:
            self.sigma = check_sigma(self.sigma, "sigma", len(self.y)).to(self.y.device)


@dataclass
class LeastSquaresFit:
    """What `solve` returns."""

    problem: Problem
    params: dict[str, float]  # every parameter, fixed ones included, in formula order
    stderr: dict[str, float]  # fixed parameters: 0.0 (lmfit's convention)
    free: list[str]
    fixed: dict[str, float]
    bounds: dict[str, tuple[float, float]]
    at_bound: dict[str, str]  # name -> "lower" | "upper"
    statistics: FitStatistics
    status: str  # "converged", "no_progress" or "max_steps"
    steps: int
    residuals: torch.Tensor = field(repr=False)  # (n,) weighted, at the optimum
    jacobian_t: torch.Tensor = field(repr=False)  # (p_free, n)


def solve(
    problem: Problem,
    init: Mapping[str, float],
    *,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    fixed: Mapping[str, float] | None = None,
    absolute_sigma: bool = False,
    tol: float = 1e-6,
    max_steps: int = 10_000,
) -> LeastSquaresFit:
    """Fit problem.f to the data from `init` (a value for every free parameter) by
    Levenberg-Marquardt, the free parameters inside `bounds`, the `fixed` ones held."""
    bounds, fixed = dict(bounds or {}), dict(fixed or {})
    split = FreeParameters(problem.names, fixed)
    start = {n: float(init[n]) for n in split.free}
    check_start(start, {n: b for n, b in bounds.items() if n in start})
    residuals = Residuals(
        split.function(problem.f), problem.x, problem.y, problem.elementwise, problem.sigma
    )
    box = bound_vectors(bounds, split.free) if any(n in bounds for n in split.free) else None
    b0 = torch.tensor([start[n] for n in split.free], dtype=torch.float64)
    b, opt, status, steps = _run(residuals, b0, box, tol, max_steps, tau=1e-4, shrink=1 / 30)
    if status != "converged":  # fit_curve's one retry, with strong damping
        b2, opt2, status2, steps2 = _run(residuals, b0, box, tol, max_steps, 0.1, 1 / 3)
        if _sum_sq(residuals, b2) < _sum_sq(residuals, b):
            b, opt, status, steps = b2, opt2, status2, steps + steps2
    cached = opt.residuals_and_jacobian_at(b)
    if cached is None:
        cached = (residuals(b), residuals.jacobian_t())
    r, jt = cached
    stats = fit_statistics(r, jt, split.free, absolute_sigma)
    params = split.full(b.tolist())
    return LeastSquaresFit(
        problem=problem,
        params=params,
        stderr={n: 0.0 if n in fixed else stats.stderr[n] for n in problem.names},
        free=split.free,
        fixed=fixed,
        bounds=bounds,
        at_bound=at_bounds(params, {n: v for n, v in bounds.items() if n not in fixed}),
        statistics=stats,
        status=status,
        steps=steps,
        residuals=r,
        jacobian_t=jt,
    )


def _run(residuals: Residuals, b0, box, tol, max_steps, tau, shrink):
    b = torch.nn.Parameter(b0.clone())
    opt = LevenbergMarquardt([b], residuals, tol=tol, tau=tau, shrink=shrink, bounds=box)
    status, steps = "max_steps", 0
    try:
        while steps < max_steps:
            opt.step()
            steps += 1
            if opt.status is not None:
                status = opt.status
                break
    except NotFinite:
        r = residuals(b0).detach()
        bad = (~torch.isfinite(r)).nonzero()
        where = f" (first at row {int(bad[0]) + 1})" if len(bad) else " (in a derivative)"
        raise FormulaError(
            f"the residuals or their derivatives are not finite at the start{where}; "
            "choose other starting values (--init name=value) or leave that row out"
        ) from None
    return b.detach(), opt, status, steps


def _sum_sq(residuals: Residuals, b: torch.Tensor) -> float:
    r = residuals(b)
    s = float(r @ r)
    return s if math.isfinite(s) else math.inf
