"""One formula fitted to many groups of rows at once (`--by COL`): one vectorised
Levenberg-Marquardt over G groups, each with its own parameters, damping and stop.

The groups' rows are padded into (M, G) arrays (many_solver.Padded): one backward pass
gives every group's Jacobian, and only p x p summaries of it are kept (J^T J, J^T r).
Each group follows LevenbergMarquardt's rules exactly (see its docstring): with
A = J D^-1 (D: the running maximum of J's column norms) and g = A^T r,

    stop "converged"  when  |U^T r|^2 = g^T (A^T A)^-1 g <= tol^2 |r|^2 / (n - p)
    trial step        delta = -D^-1 (A^T A + lam I)^-1 g        (lam = tau s_max^2 at first)
    predicted         = (g . z + lam |z|^2) / 2,  z = (A^T A + lam I)^-1 g
    rho > 0           accept; lam *= max(shrink, 1 - (2 rho - 1)^3); nu = 2
    otherwise         lam *= nu; nu *= 2; after max_trials failures in a row: "no_progress"

These are the same quantities as the SVD formulas of levenberg.py, written with the
scaled p x p Gram matrix (as levenberg.decompose does for large n) and solved by
batched Cholesky factorisations: a group that converged or failed stops changing,
the others go on; the loop ends when none is running. Groups that stop on
"no_progress" or the step limit are refitted once with strong damping, as
fit_curve does, and the better fit is kept. Fixed parameters (lmfit's vary=False)
are held as in fit_curve (fixed.FreeParameters), bounds as LevenbergMarquardt's
projected, active-set step keeps them (many_solver.levenberg_marquardt's `box`), so
every group's fit is the one fit_curve(..., bounds=...) makes of it alone. Everything
stays on the tensors' device; the host syncs once or twice per iteration, to ask
which groups still run.

`on_step(progress)` (a ManyProgress) is called once per iteration: the loop's hook for
a live page or a stop. It reads the groups' current values only when it asks for them,
and raising CancelFit from it ends the fit at once: the groups still running are
"interrupted" at their current values, finished ones keep their results.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from descent.errors import ConfigError, DataError
from descent.fitting.bounds import bound_vectors, parse_bounds
from descent.fitting.fixed import FreeParameters, parse_fixed
from descent.fitting.many_solver import (
    FAILED,
    INTERRUPTED,
    MAX_STEPS,
    NO_PROGRESS,
    RUNNING,
    STOPPED,
    Padded,
    flat,
    levenberg_marquardt,
    standard_errors,
)
from descent.fitting.weights import check_sigma

__all__ = ["STOPPED", "ManyFits", "ManyProgress", "fit_many"]

AT_BOUND_RTOL = 1e-9  # bounds.at_bounds' tolerance: a value this close to a bound is on it


@dataclass
class ManyFits:
    """Per-group results of `fit_many`, group g in row g of every tensor, every
    parameter (fixed ones included) in `names` order."""

    names: list[str]
    params: torch.Tensor  # (G, p); NaN for a failed group
    stderr: torch.Tensor  # (G, p); NaN when not estimable, 0 for a fixed parameter
    rss: torch.Tensor  # (G,) sum of squared (weighted) residuals: chi-square with sigma
    n: torch.Tensor  # (G,) rows in each group
    steps: torch.Tensor  # (G,) Jacobians evaluated
    stopped: list[str]  # "converged", "no_progress", "max_steps" or "failed"
    reasons: list[str]  # why a group failed, else ""
    fixed: dict[str, float] = field(default_factory=dict)
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    message: str = ""  # why the fit was stopped early (on_step raised CancelFit), or ""

    def at_bound(self) -> list[dict[str, str]]:
        """Per group, {name: "lower" | "upper"} for the free parameters that end on a
        bound (bounds.at_bounds' rule: within 1e-9 of it, relatively); their standard
        errors are not meaningful there."""
        out: list[dict[str, str]] = [{} for _ in self.stopped]
        for name, (lo, hi) in self.bounds.items():
            if name in self.fixed:
                continue
            v = self.params[:, self.names.index(name)]
            for side, edge in (("lower", lo), ("upper", hi)):
                if not math.isfinite(edge):
                    continue
                scale = torch.clamp(torch.maximum(v.abs(), torch.tensor(abs(edge))), min=1e-300)
                on = (v - edge).abs() <= AT_BOUND_RTOL * scale
                for g in on.nonzero().flatten().tolist():
                    out[g][name] = side
        return out

    def rows(self, labels: Sequence | None = None) -> list[dict]:
        """One dict per group: group, params, stderr, rss, n, stopped, at_bound (and
        reason)."""
        labels = range(len(self.stopped)) if labels is None else labels
        params, stderr, rss = self.params.tolist(), self.stderr.tolist(), self.rss.tolist()
        n = self.n.tolist()
        at_bound = self.at_bound()
        out = []
        for g, label in enumerate(labels):
            row = {
                "group": label,
                "params": dict(zip(self.names, params[g], strict=True)),
                "stderr": dict(zip(self.names, stderr[g], strict=True)),
                "rss": rss[g],
                "n": n[g],
                "stopped": self.stopped[g],
                "at_bound": at_bound[g],
            }
            if self.reasons[g]:
                row["reason"] = self.reasons[g]
            out.append(row)
        return out


class ManyProgress:
    """What `on_step` sees of a fit_many in progress: `step` (iterations so far, the
    retry's included), `running` (groups still going) and, computed when asked,
    `params()` (G, p) and `rss()` (G,): every group's current values (fixed ones
    included; NaN for a failed group), and `stopped()`: the STOPPED name of each."""

    def __init__(self, names: list[str], n_groups: int, fill: Callable) -> None:
        self.names, self.n_groups, self._fill = names, n_groups, fill
        self.step = 0
        self._snapshot: Callable | None = None
        self._cache: tuple | None = None

    def _values(self) -> tuple:
        if self._cache is None:
            self._cache = self._fill(self._snapshot)
        return self._cache

    def params(self) -> torch.Tensor:
        return self._values()[0]

    def rss(self) -> torch.Tensor:
        return self._values()[1]

    def stopped(self) -> list[str]:
        return [STOPPED[s] for s in self._values()[2].tolist()]

    @property
    def running(self) -> int:
        return sum(s == "running" for s in self.stopped())


def fit_many(
    f: Callable,
    x: torch.Tensor,
    y: torch.Tensor,
    groups: torch.Tensor,
    init: Sequence[float] | torch.Tensor,
    names: Sequence[str],
    *,
    fixed: Mapping[str, float] | str | Sequence[str] | None = None,
    bounds: Mapping[str, tuple[float, float]] | str | Iterable[str] | None = None,
    sigma: torch.Tensor | None = None,
    absolute_sigma: bool = False,
    tol: float = 1e-6,
    max_steps: int = 10_000,
    max_trials: int = 12,
    on_step: Callable[[ManyProgress], None] | None = None,
) -> ManyFits:
    """Fit y ~ f(x, b_g) separately in every group g of rows, all at once.

    x (N,) or (N, d), y (N,), groups (N,) integer codes 0..G-1 (every code a group,
    rows in any order), init (p,) for every group or (G, p), names the p parameters.
    f is a Formula (parse_formula: evaluated on (M, G) arrays without copies) or any
    elementwise f(x, params) taking p per-row parameter tensors. `fixed` {name: value}
    holds parameters in every group; `bounds` {name: (lo, hi)} (or "a=0:inf,k=0.5:2")
    keeps them inside, as fit_curve does (every group's start must be inside).
    `on_step` is called once per iteration with a ManyProgress (see the module's
    docstring). Returns ManyFits; a group with fewer rows than free parameters, or
    whose start gives non-finite residuals or derivatives, is "failed" with its reason
    and the others are fitted."""
    names = list(names)
    split = FreeParameters(names, parse_fixed(fixed, names))
    bounds = parse_bounds(bounds, names)
    free = [names.index(n) for n in split.free]
    p, n_rows = len(free), len(y)
    groups = torch.as_tensor(groups, device=y.device)
    if groups.dtype.is_floating_point or groups.shape != (n_rows,):
        raise DataError(f"groups must be {n_rows} integer codes, one per row")
    if n_rows == 0:
        raise DataError("no rows to fit")
    if sigma is not None:
        sigma = check_sigma(sigma, "sigma", n_rows).to(y.device)
    n_groups = int(groups.max()) + 1
    b0 = torch.as_tensor(init, dtype=torch.float64, device=y.device)
    if b0.shape == (len(names),):
        b0 = b0.expand(n_groups, len(names))
    if b0.shape != (n_groups, len(names)):
        raise ConfigError(
            f"init must be ({len(names)},) or ({n_groups}, {len(names)}), got {tuple(b0.shape)}"
        )
    b0 = b0[:, free].T.contiguous()  # (p, G): free parameters only, the group last
    box = None
    if any(n in bounds for n in split.free):
        lo, hi = (t.to(y.device).unsqueeze(1) for t in bound_vectors(bounds, split.free))
        outside = ((b0 < lo) | (b0 > hi)).nonzero()
        if len(outside):
            i, g = outside[0].tolist()
            name, (low, high) = split.free[i], bounds[split.free[i]]
            raise ConfigError(
                f"the start {name} = {float(b0[i, g]):g}"
                + (f" of group {g}" if len(b0.unique(dim=1).T) > 1 else "")
                + f" lies outside --bounds {name}={low:g}:{high:g}; choose a start inside "
                f"the range (--init {name}=VALUE) or widen the bounds"
            )
        box = (lo, hi)
    evaluate = f.evaluate if hasattr(f, "evaluate") else flat(f)
    data = Padded(split.function(evaluate), x, y, groups, n_groups, sigma)

    status = torch.full((n_groups,), RUNNING, dtype=torch.int64, device=y.device)
    reasons = [""] * n_groups
    for g in (data.n < p).nonzero().flatten().tolist():
        status[g] = FAILED
        reasons[g] = f"too few rows: {int(data.n[g])} for {p} parameters"
    r, cols, unit = data.residuals_and_jacobian(b0)
    start = data.moments(r, cols, unit)  # (G,), (p, p, G), (p, G)
    # every residual and derivative is finite where |r|^2 and J's column norms are
    finite = torch.isfinite(start[0]) & torch.isfinite(start[1].diagonal(dim1=0, dim2=1)).all(1)
    for g in (~finite & (status == RUNNING)).nonzero().flatten().tolist():
        bad_r = ~torch.isfinite(r[:, g])  # (M,)
        bad = (bad_r | ~torch.isfinite(torch.stack([c[:, g] for c in cols])).all(0)).nonzero()
        status[g] = FAILED
        if len(bad) == 0:
            reasons[g] = "the sum of squared residuals overflows at the start"
            continue
        what = "the residual" if bad_r[bad[0]] else "a derivative"
        reasons[g] = f"{what} is not finite at the start, at row {int(bad[0]) + 1} of the group"

    ok = (status == RUNNING).nonzero().flatten()
    everyone = len(ok) == n_groups
    if not everyone:
        start = tuple(m.index_select(-1, ok) for m in start)
    b, st, steps = b0.clone(), status.clone(), torch.zeros_like(status)
    half_ss = torch.full((n_groups,), math.nan, dtype=torch.float64, device=y.device)
    jtj = torch.full((p, p, n_groups), math.nan, dtype=torch.float64, device=y.device)
    running = data if everyone else data.select(ok)
    progress = None
    if on_step is not None:

        def current(snap: Callable) -> tuple:
            """(params (G, p) with the fixed ones, rss (G,), status (G,)) now: the
            groups of the call in progress from its snapshot, the others as they stand."""
            (b_now, hs_now, st_now), where = snap()
            bb, hh, ss = b.clone(), half_ss.clone(), st.clone()
            bb[:, where], hh[where], ss[where] = b_now, hs_now, st_now
            full = torch.empty(n_groups, len(names), dtype=torch.float64, device=y.device)
            full[:, free] = bb.T
            for name, value in split.fixed.items():
                full[:, names.index(name)] = value
            full[ss == FAILED] = math.nan
            return full, 2 * hh, ss

        progress = ManyProgress(names, n_groups, current)
    args = (tol, max_steps, max_trials, box)
    hook = _hook(on_step, progress, ok)
    out = levenberg_marquardt(running, b0[:, ok], start, 1e-4, 1 / 30, *args, hook)
    b[:, ok], st[ok], steps[ok], half_ss[ok], jtj[:, :, ok], message = out
    again = ((st == NO_PROGRESS) | (st == MAX_STEPS)).nonzero().flatten()
    if len(again) and not message:  # fit_curve's retry: strong damping, from the start
        pos = torch.searchsorted(ok, again)  # where the retried groups sit in `start`
        start2 = [m.index_select(-1, pos) for m in start]
        b2, st2, steps2, hs2, jtj2, message = levenberg_marquardt(
            data.select(again), b0[:, again], start2, 0.1, 1 / 3, *args,
            _hook(on_step, progress, again),
        )  # fmt: skip
        # keep the better of the two; a retry cut short keeps the first fit
        better = (hs2 < half_ss[again]) & (st2 != INTERRUPTED)
        w = again[better]
        b[:, w], st[w], half_ss[w] = b2[:, better], st2[better], hs2[better]
        jtj[:, :, w] = jtj2[:, :, better]
        steps[again] += steps2
    stderr = standard_errors(jtj, 2 * half_ss, data.n, absolute_sigma)  # (p, G)
    params = torch.empty(n_groups, len(names), dtype=torch.float64, device=y.device)
    errors = torch.zeros_like(params)  # a fixed parameter's standard error: 0 (lmfit's)
    params[:, free], errors[:, free] = b.T, stderr.T
    for name, value in split.fixed.items():
        params[:, names.index(name)] = value
    errors[st == FAILED] = math.nan
    params[st == FAILED] = math.nan
    errors[st == INTERRUPTED] = math.nan  # not at a minimum: no curvature to read
    return ManyFits(
        names=names,
        params=params,
        stderr=errors,
        rss=2 * half_ss,
        n=data.n,
        steps=steps,
        stopped=[STOPPED[s] for s in st.tolist()],
        reasons=reasons,
        fixed=dict(split.fixed),
        bounds={n: v for n, v in bounds.items() if n not in split.fixed},
        message=message,
    )


def _hook(on_step, progress: ManyProgress | None, where: torch.Tensor):
    """levenberg_marquardt's on_step for the groups `where` (global indices): counts
    the step and hands `on_step` the progress, whose values come from the snapshot."""
    if on_step is None:
        return None

    def hook(snapshot: Callable) -> None:
        progress.step += 1
        progress._snapshot = lambda: (snapshot(), where)
        progress._cache = None
        on_step(progress)

    return hook
