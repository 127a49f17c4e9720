"""Profile-likelihood confidence intervals (`--ci profile`), as lmfit's conf_interval.

Parameter b_j is held at v and the others refitted: chi2_j(v) = min chi-square with
b_j = v. lmfit's F test with one constrained parameter,

    P(v) = F_cdf((chi2_j(v) / chi2_best - 1) * nfree; 1, nfree),

reaches the probability P of a level where (F(1, nu) = T^2)

    chi2_j(v) = chi2_best * (1 + t_ppf((1 + P) / 2, nfree)^2 / nfree),

so each end of an interval is a root of chi2_j(v) - that target, found by bracketing
outwards from the best fit and then by the Illinois variant of regula falsi, to
1e-9 of the parameter's scale (lmfit's root finder stops at 5e-5 relative). Each
refit starts from the nearest point already profiled. An end that the profile does
not reach inside the parameter's bounds (or in `max_expand` doublings) is +-inf,
as lmfit reports it. The intervals need not be symmetric: that is their point.

Every refit is fit_curve's (Levenberg-Marquardt, its retry included) with the profiled
parameter added to the fixed ones, on the rows and sigmas of the original fit.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from descent.errors import ConfigError
from descent.fitting.curve import CurveFit, fit_curve
from descent.fitting.distributions import t_interval_factor
from descent.fitting.levenberg import Residuals
from descent.fitting.statistics import LEVELS


@dataclass
class ProfileInterval:
    """One parameter's profile interval at each level: [(probability, low, high)]."""

    name: str
    best: float
    intervals: list[tuple[float, float, float]]
    refits: int


def profile_intervals(
    fit: CurveFit,
    names: Sequence[str] | None = None,
    levels: Sequence[float] = LEVELS,
    xtol: float = 1e-9,
    max_expand: int = 60,
) -> dict[str, ProfileInterval]:
    """Profile-likelihood intervals of the free parameters `names` (default: all free
    ones) of a `fit_curve` result, at the given probabilities (ascending)."""
    names = list(fit.free if names is None else names)
    not_free = [n for n in names if n not in fit.free]
    if not_free:
        raise ConfigError(
            f"--ci profile: {', '.join(not_free)} not fitted (fixed or unknown); the free "
            f"parameters are {', '.join(fit.free)}"
        )
    stats = fit.statistics
    if stats.nfree <= 0:
        raise ConfigError(
            f"--ci profile needs more rows than free parameters ({stats.ndata} rows, "
            f"{stats.nvarys} free parameters)"
        )
    levels = sorted(levels)
    targets = [
        stats.chisqr * (1 + t_interval_factor(p, stats.nfree) ** 2 / stats.nfree) for p in levels
    ]
    out = {}
    for name in names:
        profile = _Profile(fit, name)
        ends = [profile.end(direction, targets, xtol, max_expand) for direction in (-1, 1)]
        intervals = [(p, lo, hi) for p, lo, hi in zip(levels, ends[0], ends[1], strict=True)]
        out[name] = ProfileInterval(name, fit.params[name], intervals, profile.refits)
    return out


class _Profile:
    """chi2_j(v) for one parameter, remembering every refit for warm starts."""

    def __init__(self, fit: CurveFit, name: str) -> None:
        self.fit, self.name = fit, name
        self.best = fit.params[name]
        self.lo, self.hi = fit.bounds.get(name, (-math.inf, math.inf))
        se = fit.stderr[name]
        self.scale = se if math.isfinite(se) and se > 0 else max(abs(self.best) * 0.2, 1e-3)
        self.points = {self.best: (fit.statistics.chisqr, fit.params)}
        self.refits = 0

    def __call__(self, v: float) -> float:
        if v not in self.points:
            near = min(self.points, key=lambda u: abs(u - v))
            start = self.points[near][1]
            fixed = {**self.fit.fixed, self.name: v}
            if len(fixed) == len(self.fit.params):  # nothing left to refit
                chi2, params = _chisqr(self.fit, {**start, self.name: v}), {**start}
            else:
                refit = fit_curve(
                    _started(self.fit.model, start),
                    self.fit.x,
                    self.fit.y,
                    sigma=self.fit.sigma,
                    bounds={k: b for k, b in self.fit.bounds.items() if k not in fixed},
                    fixed=fixed,
                )
                chi2, params = refit.statistics.chisqr, refit.params
            self.refits += 1
            self.points[v] = (chi2, params)
        return self.points[v][0]

    def end(self, direction: int, targets: list[float], xtol: float, max_expand: int):
        """The interval's end on one side for each target chi-square (ascending)."""
        edge = self.hi if direction > 0 else self.lo
        inside, step = self.best, self.scale
        ends = []
        for target in targets:
            v, reached = inside, False
            for _ in range(max_expand):  # bracket: double the step until chi2 >= target
                v = v + direction * step
                if (v - edge) * direction >= 0:
                    v = edge
                if self(v) >= target:
                    reached = True
                    break
                inside = v
                if v == edge:
                    break
                step *= 2
            if not reached:
                ends += [direction * math.inf] * (len(targets) - len(ends))
                return ends
            root = _illinois(lambda u, t=target: self(u) - t, inside, v, xtol * self.scale)
            ends.append(root)
            inside, step = root, abs(v - root) or self.scale
        return ends


def _illinois(g, a: float, b: float, xtol: float, max_iter: int = 100) -> float:
    """A root of g between a (g < 0) and b (g >= 0): regula falsi, Illinois-modified."""
    ga, gb, side = g(a), g(b), 0
    for _ in range(max_iter):
        c = b - gb * (b - a) / (gb - ga) if gb != ga else 0.5 * (a + b)
        if not min(a, b) < c < max(a, b):
            c = 0.5 * (a + b)
        gc = g(c)
        if gc >= 0:
            b, gb = c, gc
            if side == 1:
                ga *= 0.5
            side = 1
        else:
            a, ga = c, gc
            if side == -1:
                gb *= 0.5
            side = -1
        if abs(b - a) <= xtol or gc == 0:
            return c
    return 0.5 * (a + b)


def _started(model, start: dict[str, float]):
    """A copy of the fit's model at `start`, for a refit (the fit's model is left alone)."""
    fresh = copy.deepcopy(model)
    with torch.no_grad():
        fresh.params.copy_(torch.tensor([start[n] for n in model.names], dtype=model.params.dtype))
    return fresh


def _chisqr(fit: CurveFit, params: dict[str, float]) -> float:
    m = fit.model
    b = torch.tensor([params[n] for n in m.names], dtype=torch.float64)
    r = Residuals(m.f, fit.x, fit.y, getattr(m, "elementwise", False), fit.sigma)(b)
    return float(r @ r)
