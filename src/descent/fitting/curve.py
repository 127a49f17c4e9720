"""fit_curve(): a formula fitted to data by least squares with descent's loop,
curve_fit's and lmfit's job: Levenberg-Marquardt by default, or sgd/adam/lbfgs on
whitened parameters; per-row sigmas, bounds and fixed parameters; lmfit's statistics
from the residual Jacobian. It is the one way descent fits one curve: profile
intervals refit through it, and `descent fit` (commands/fit.py) wraps it with a CSV,
a run folder, plots and a summary.

Fixed parameters (lmfit's vary=False) are hidden from the solver: it trains a model of
the free parameters alone (fixed.FreeParameters), so the Jacobian has a column per free
parameter and the degrees of freedom count only those. Sigmas divide the residuals
(levenberg.Residuals), bounds keep the free parameters in their box
(LevenbergMarquardt's projected step); both need Levenberg-Marquardt, and sgd/adam/lbfgs
refuse them (options.check_fit_options): their loss is the plain mean squared error,
and a clipped gradient step is no bounded least-squares solver.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from rich.console import Console

from descent.callbacks.schedules import Schedule
from descent.callbacks.snapshots import PredictionSnapshots
from descent.callbacks.stopping import Converged
from descent.core.events import Callback, StopReason
from descent.core.guards import InterruptHandler
from descent.core.learner import Learner
from descent.core.progress import ProgressDisplay
from descent.core.result import FitResult
from descent.data.batches import Batches
from descent.distributed.devices import resolve_device
from descent.errors import ConfigError, DataError, FormulaError
from descent.fitting.bounds import (
    AT_BOUND_NOTE,
    at_bounds,
    bound_vectors,
    check_inside,
    parse_bounds,
)
from descent.fitting.fixed import FreeParameters, parse_fixed
from descent.fitting.learner import JacobianLearner, OptimizerStop
from descent.fitting.levenberg import LevenbergMarquardt, NotFinite, Residuals
from descent.fitting.scaled import ScaledModel
from descent.fitting.start import check_start
from descent.fitting.statistics import LEVELS, FitStatistics, fit_statistics, t_intervals
from descent.fitting.weights import check_sigma
from descent.io.checkpoints import ResumeFrom, load_learner_state
from descent.models.function import FunctionModel
from descent.options import FIT_DEFAULT_LR, check_fit_options


def converged_rule() -> Converged:
    """When a gradient-descent fit has converged: the loss changed by less than 1e-12
    of itself over 20 epochs (float64 resolves it; the fit is then exact to ~6 digits)."""
    return Converged(rtol=1e-12, window=20)


@dataclass
class CurveFit:
    """What `fit_curve` returns: the fitted parameters, how sure they are, and what
    profile intervals (profile.py) and bands (bands.py) need to go further."""

    params: dict[str, float]  # every parameter, fixed ones included, in formula order
    stderr: dict[str, float]  # fixed parameters: 0.0 (lmfit's convention)
    correlation: list[list[float]]  # (p_free, p_free), in `free` order
    stderr_note: str  # why standard errors are NaN (or meaningless at a bound), or ""
    rss: float  # sum of squared residuals f - y, unweighted
    r2: float
    n: int
    fit_result: FitResult  # what the loop did: why it stopped, steps, history
    model: FunctionModel  # the formula's model, every parameter at its fitted value
    learner: Learner
    snapshots: list[tuple[int, torch.Tensor]]  # (step, predictions on snapshot_x)
    statistics: FitStatistics  # chisqr, redchi, aic, bic, covariance over `free`
    free: list[str]
    fixed: dict[str, float] = field(default_factory=dict)
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    at_bound: dict[str, str] = field(default_factory=dict)  # name -> "lower" | "upper"
    absolute_sigma: bool = False
    sigma: torch.Tensor | None = field(default=None, repr=False)  # (n,) or None
    x: torch.Tensor | None = field(default=None, repr=False)  # the rows fitted
    y: torch.Tensor | None = field(default=None, repr=False)
    residuals: torch.Tensor | None = field(default=None, repr=False)  # (n,) weighted
    jacobian_t: torch.Tensor | None = field(default=None, repr=False)  # (p_free, n)

    def intervals(self, levels: Sequence[float] = LEVELS) -> dict[str, list]:
        """{free name: [(probability, low, high), ...]}: b -+ t_ppf((1 + P) / 2, nfree)
        * stderr, at 68.3 % and 95 % by default."""
        se = {n: self.stderr[n] for n in self.free}
        return t_intervals(self.params, se, self.statistics.nfree, levels)


def fit_curve(
    model: FunctionModel,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    sigma: torch.Tensor | Sequence[float] | None = None,
    absolute_sigma: bool = False,
    bounds: Mapping[str, tuple[float, float]] | str | Iterable[str] | None = None,
    fixed: Mapping[str, float] | str | Iterable[str] | None = None,
    valid: tuple[torch.Tensor, torch.Tensor] | None = None,
    optimizer: str = "lm",
    lr: float | None = None,
    momentum: float = 0.0,
    epochs: int = 10_000,
    scale: bool = True,
    schedule: str = "constant",
    snapshot_x: torch.Tensor | None = None,
    console: Console | None = None,
    callbacks: Sequence[Callback] = (),
    resume: ResumeFrom | None = None,
    device: str | torch.device | None = None,
) -> CurveFit:
    """Fit `model` (a FormulaModel, changed in place) to y ~ model(x) by least squares.

    The Python form of `descent fit`. x is (n,) or (n, d); y is (n,).
    - sigma (n,): each row's standard uncertainty; the fit minimises chi-square.
      absolute_sigma: the covariance is (J^T J)^-1 as is, else scaled by the reduced
      chi-square (curve_fit's absolute_sigma, lmfit's scale_covar=False).
    - bounds {name: (lo, hi)} (or "a=0:inf,k=0.5:2"): the solver stays inside; the
      start must be inside. fixed {name: value} (or "c=0.5"): held at that value.
    Returns the parameters, standard errors, lmfit's statistics, RSS and R^2.
    `console` shows the epoch table; `snapshot_x` records predictions there for plots
    and animations. `callbacks` join the first learner (not a retry), and `resume`
    continues it from a checkpoint. `device` (auto, cpu, cuda, ...): the model and the
    data move there first (None: where they are)."""
    if device is not None:
        dev = resolve_device(
            device, float64=any(p.dtype == torch.float64 for p in model.parameters())
        )
        model.to(dev)
        x, y = x.to(dev), y.to(dev)
        valid = None if valid is None else (valid[0].to(dev), valid[1].to(dev))
        snapshot_x = None if snapshot_x is None else snapshot_x.to(dev)
        sigma = torch.as_tensor(sigma).to(dev) if sigma is not None else None
    bounds, fixed = prepare_start(model, bounds, fixed)
    check_fit_options(
        optimizer, lr, momentum, schedule, weighted=sigma is not None, bounded=bool(bounds)
    )
    if sigma is not None:
        sigma = check_sigma(sigma, "sigma", len(y)).to(y.device)
    if schedule != "constant":
        callbacks = [*callbacks, Schedule(schedule)]
    split = FreeParameters(model.names, fixed)
    solved = free_model(model, split)
    box = bound_vectors(bounds, split.free) if any(n in bounds for n in split.free) else None
    opts = dict(
        valid=valid,
        optimizer=optimizer,
        lr=lr,
        momentum=momentum,
        scale=scale,
        snapshot_x=snapshot_x,
        console=console,
        sigma=sigma,
        bounds=box,
    )
    init = solved.params.detach().clone()
    try:
        setup = make_curve_learner(solved, x, y, **opts, extra=callbacks)
        if resume is not None:
            load_learner_state(setup.learner, resume)
        result = setup.learner.fit(epochs)
    except NotFinite as e:
        check_start(model, x, y)  # raises, saying where
        if sigma is not None:  # finite unweighted: the weights 1/sigma overflow
            small = float(sigma.min())
            raise DataError(
                f"{e}: the formula is finite there, but the residuals divided by --sigma "
                f"(as small as {small:.3g}) overflow float64; give the uncertainties in "
                "units nearer the data's (or fit without --sigma)"
            ) from None
        raise FormulaError(f"{e}; choose other starting values (--init name=value)") from None
    if optimizer == "lm" and result.stopped in (StopReason.MAX_EPOCHS, StopReason.NO_PROGRESS):
        # One retry from the start with strong damping (MINPACK's tau = 0.1 style):
        # it rescues very poor starts; the better of the two fits is kept.
        again = copy.deepcopy(solved)
        with torch.no_grad():
            again.params.copy_(init)
        retry = make_curve_learner(again, x, y, **opts, tau=0.1, shrink=1 / 3)
        if console is not None:
            console.print(f"stopped: {result.stopped}; retrying from the start with strong damping")
        retry_result = retry.learner.fit(epochs)
        if _chisqr(again, x, y, sigma) < _chisqr(solved, x, y, sigma):
            with torch.no_grad():
                solved.params.copy_(again.params)
            setup, result = retry, retry_result
    learner = setup.learner
    if isinstance(learner.model, ScaledModel):
        with torch.no_grad():
            solved.params.copy_(learner.model.unscaled())
    with torch.no_grad():
        full = split.full(solved.params.tolist()).values()
        model.params.copy_(torch.tensor(list(full), dtype=model.params.dtype))
    return _result(model, solved, split, x, y, sigma, absolute_sigma, bounds, setup, result)


def prepare_start(
    model: FunctionModel,
    bounds: Mapping[str, tuple[float, float]] | str | Iterable[str] | None,
    fixed: Mapping[str, float] | str | Iterable[str] | None,
) -> tuple[dict[str, tuple[float, float]], dict[str, float]]:
    """(bounds, fixed) parsed and checked against the model's parameters (ConfigError
    naming the item), the fixed values put into the model, and ConfigError when a free
    parameter starts outside its bounds: before any fit, or any run folder."""
    bounds = parse_bounds(bounds, model.names)
    fixed = parse_fixed(fixed, model.names)
    for name, value in fixed.items():
        lo, hi = bounds.get(name, (-math.inf, math.inf))
        if not lo <= value <= hi:
            raise ConfigError(
                f"--fix {name}={value:g} is outside --bounds {name}={lo:g}:{hi:g}: a held "
                "parameter needs no bounds; drop one of the two"
            )
    with torch.no_grad():
        for name, value in fixed.items():
            model.params[model.names.index(name)] = value
    start = model.values()
    check_inside(
        {n: start[n] for n in start if n not in fixed},
        {n: b for n, b in bounds.items() if n not in fixed},
    )
    return bounds, fixed


def free_model(model: FunctionModel, split: FreeParameters) -> FunctionModel:
    """The model the solver trains: `model` itself, or one of its free parameters
    alone (the fixed ones put back in place inside its function)."""
    if not split.fixed:
        return model
    start = model.values()
    free = FunctionModel(split.function(model.f), split.free, [start[n] for n in split.free])
    free.elementwise = getattr(model, "elementwise", False)
    return free.to(model.params.dtype)


def _result(model, solved, split, x, y, sigma, absolute_sigma, bounds, setup, result) -> CurveFit:
    """The CurveFit at the solution: residuals and Jacobian (the solver's own when it
    has them), lmfit's statistics, R^2."""
    b = solved.params.detach()
    cached = None
    if isinstance(setup.learner.opt, LevenbergMarquardt):  # r and J^T at the solution: known
        cached = setup.learner.opt.residuals_and_jacobian_at(b)
    if cached is None:
        res = Residuals(solved.f, x, y, getattr(solved, "elementwise", False), sigma)
        cached = (res(b), res.jacobian_t())
    r, jt = cached
    stats = fit_statistics(r, jt, split.free, absolute_sigma)
    params = model.values()
    at_bound = at_bounds(params, {n: v for n, v in bounds.items() if n in split.free})
    notes = [stats.note] if stats.note else []
    notes += [f"{n} is " + AT_BOUND_NOTE.format(side=side) for n, side in at_bound.items()]
    unweighted = r if sigma is None else r * sigma
    rss = float(unweighted @ unweighted)
    sst = float(((y - y.mean()) ** 2).sum())
    return CurveFit(
        params=params,
        stderr={n: 0.0 if n in split.fixed else stats.stderr[n] for n in model.names},
        correlation=stats.correlation.tolist(),
        stderr_note="; ".join(notes),
        rss=rss,
        r2=1 - rss / sst if sst > 0 else math.nan,
        n=len(y),
        fit_result=result,
        model=model,
        learner=setup.learner,
        snapshots=setup.snapshots.snapshots if setup.snapshots is not None else [],
        statistics=stats,
        free=split.free,
        fixed=dict(split.fixed),
        bounds=dict(bounds),
        at_bound=at_bound,
        absolute_sigma=absolute_sigma,
        sigma=sigma,
        x=x,
        y=y,
        residuals=r,
        jacobian_t=jt,
    )


@dataclass
class CurveSetup:
    """A learner built for a curve fit (not yet trained), and the callback that
    records its predictions for plots and animations (None when not asked for)."""

    learner: Learner
    snapshots: PredictionSnapshots | None


def make_curve_learner(
    model: FunctionModel,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    valid: tuple[torch.Tensor, torch.Tensor] | None,
    optimizer: str,
    lr: float | None,
    momentum: float,
    scale: bool,
    snapshot_x: torch.Tensor | None,
    console: Console | None,
    sigma: torch.Tensor | None = None,
    bounds: tuple[torch.Tensor, torch.Tensor] | None = None,
    tau: float = 1e-4,
    shrink: float = 1 / 30,
    extra: Sequence[Callback] = (),
) -> CurveSetup:
    """The learner fit_curve trains: Levenberg-Marquardt on `model` (a JacobianLearner
    with OptimizerStop; residuals divided by `sigma`, parameters kept inside `bounds`,
    (lower, upper) tensors), or `optimizer` on the whitened ScaledModel (with the
    convergence rule converged_rule())."""
    callbacks: list[Callback] = []
    kwargs: dict = {}
    if optimizer == "lm":
        elementwise = getattr(model, "elementwise", False)
        residuals = Residuals(model.f, x, y, elementwise=elementwise, sigma=sigma)
        trained, learner_class, lr = model, JacobianLearner, 1.0

        def make_opt(params, lr):
            return LevenbergMarquardt(params, residuals, tau=tau, shrink=shrink, bounds=bounds)

        # LM only accepts steps that lower the sum of squares: it cannot diverge, so of
        # the default guards it needs only the interrupt handler.
        callbacks += [InterruptHandler(), OptimizerStop()]
    else:
        trained = ScaledModel(model, x, y) if scale else model
        learner_class, make_opt = Learner, optimizer
        lr = lr if lr is not None else FIT_DEFAULT_LR[optimizer]
        kwargs = {"momentum": momentum} if momentum else {}
        if optimizer == "lbfgs":  # one L-BFGS iteration per epoch, so each is seen
            kwargs = {
                "line_search_fn": "strong_wolfe",
                "max_iter": 1,
                "max_eval": 25,  # torch's default, 1.25 * max_iter, would allow no line search
                "history_size": 20,
                "tolerance_grad": 0.0,
                "tolerance_change": 0.0,
            }
        callbacks.append(converged_rule())
    snaps = PredictionSnapshots(snapshot_x, dense=40) if snapshot_x is not None else None
    if snaps is not None:
        callbacks.append(snaps)
    if console is not None:
        callbacks.append(ProgressDisplay(console))
    learner = learner_class(
        trained,
        Batches(x, y),
        Batches(*valid) if valid is not None and len(valid[1]) else None,
        loss="mse",
        optimizer=make_opt,
        lr=lr,
        opt_kwargs=kwargs,
        callbacks=[*callbacks, *extra],
        progress=False,
        guards=optimizer != "lm",
    )
    return CurveSetup(learner, snaps)


def _chisqr(model: FunctionModel, x: torch.Tensor, y: torch.Tensor, sigma) -> float:
    with torch.no_grad():
        r = model(x) - y
        return float(((r if sigma is None else r / sigma) ** 2).sum())


__all__ = [
    "CurveFit",
    "CurveSetup",
    "check_start",
    "converged_rule",
    "fit_curve",
    "free_model",
    "make_curve_learner",
    "prepare_start",
]
