"""fit_curve(): a formula fitted to data by least squares with descent's loop,
curve_fit's job: Levenberg-Marquardt by default, or sgd/adam/lbfgs on whitened
parameters; standard errors from the residual Jacobian. The `descent fit` command
around it (CSV, run folder, plots, summary) is commands/fit.py."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

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
from descent.errors import FormulaError
from descent.fitting.learner import JacobianLearner, OptimizerStop
from descent.fitting.levenberg import LevenbergMarquardt, NotFinite, Residuals, standard_errors
from descent.fitting.scaled import ScaledModel
from descent.io.checkpoints import ResumeFrom, load_learner_state
from descent.models.formula import FormulaModel
from descent.models.function import FunctionModel
from descent.options import FIT_DEFAULT_LR, check_fit_options


def converged_rule() -> Converged:
    """When a gradient-descent fit has converged: the loss changed by less than 1e-12
    of itself over 20 epochs (float64 resolves it; the fit is then exact to ~6 digits)."""
    return Converged(rtol=1e-12, window=20)


@dataclass
class CurveFit:
    """What `fit_curve` returns: the fitted parameters and how sure they are."""

    params: dict[str, float]
    stderr: dict[str, float]
    correlation: list[list[float]]
    stderr_note: str  # why standard errors are NaN, or ""
    rss: float
    r2: float
    n: int
    fit_result: FitResult  # what the loop did: why it stopped, steps, history
    model: FormulaModel
    learner: Learner
    snapshots: list[tuple[int, torch.Tensor]]  # (step, predictions on snapshot_x)


def fit_curve(
    model: FormulaModel,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
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
) -> CurveFit:
    """Fit `model` (a FormulaModel, changed in place) to y ~ model(x) by least squares.

    The Python form of `descent fit`: curve_fit's job, done by descent's loop.
    x is (n,) or (n, d); y is (n,). Returns the parameters, standard errors (from
    the residual Jacobian at the optimum), RSS and R^2. `console` shows the epoch
    table; `snapshot_x` records predictions there for plots and animations.
    `callbacks` join the first learner (not a retry), and `resume` continues it
    from a checkpoint."""
    check_fit_options(optimizer, lr, momentum, schedule)
    if schedule != "constant":
        callbacks = [*callbacks, Schedule(schedule)]
    init = model.params.detach().clone()
    opts = dict(
        valid=valid,
        optimizer=optimizer,
        lr=lr,
        momentum=momentum,
        scale=scale,
        snapshot_x=snapshot_x,
        console=console,
    )
    try:
        setup = make_curve_learner(model, x, y, **opts, extra=callbacks)
        if resume is not None:
            load_learner_state(setup.learner, resume)
        result = setup.learner.fit(epochs)
    except NotFinite as e:
        check_start(model, x, y)  # raises, saying where
        raise FormulaError(f"{e}; choose other starting values (--init name=value)") from None
    if optimizer == "lm" and result.stopped in (StopReason.MAX_EPOCHS, StopReason.NO_PROGRESS):
        # One retry from the start with strong damping (MINPACK's tau = 0.1 style):
        # it rescues very poor starts; the better of the two fits is kept.
        retry_model = copy.deepcopy(model)
        with torch.no_grad():
            retry_model.params.copy_(init)
        retry = make_curve_learner(retry_model, x, y, **opts, tau=0.1, shrink=1 / 3)
        if console is not None:
            console.print(f"stopped: {result.stopped}; retrying from the start with strong damping")
        retry_result = retry.learner.fit(epochs)
        if _rss(retry_model, x, y) < _rss(model, x, y):
            with torch.no_grad():
                model.params.copy_(retry_model.params)
            setup, result = retry, retry_result
    learner = setup.learner
    if isinstance(learner.model, ScaledModel):
        with torch.no_grad():
            model.params.copy_(learner.model.unscaled())
    cached = None
    if isinstance(learner.opt, LevenbergMarquardt):  # r and J^T at the solution: known
        cached = learner.opt.residuals_and_jacobian_at(model.params.detach())
    if cached is None:
        res = Residuals(model.f, x, y)
        cached = (res(model.params.detach()), res.jacobian_t())
    r, jt = cached
    se, corr, note = standard_errors(jt, r)
    rss = float(r @ r)
    sst = float(((y - y.mean()) ** 2).sum())
    return CurveFit(
        params=model.values(),
        stderr=dict(zip(model.names, se.tolist(), strict=True)),
        correlation=corr.tolist(),
        stderr_note=note,
        rss=rss,
        r2=1 - rss / sst if sst > 0 else math.nan,
        n=len(y),
        fit_result=result,
        model=model,
        learner=learner,
        snapshots=setup.snapshots.snapshots if setup.snapshots is not None else [],
    )


def check_start(model: FormulaModel, x: torch.Tensor, y: torch.Tensor) -> None:
    """Raise FormulaError, naming the observation, when the formula, its derivatives or
    the sum of squared residuals are not finite at the model's (starting) parameters:
    no solver can start there (curve_fit fails there too, less clearly)."""
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


@dataclass
class CurveSetup:
    """A learner built for a curve fit (not yet trained), and the callback that
    records its predictions for plots and animations (None when not asked for)."""

    learner: Learner
    snapshots: PredictionSnapshots | None


def make_curve_learner(
    model: FormulaModel,
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
    tau: float = 1e-4,
    shrink: float = 1 / 30,
    extra: Sequence[Callback] = (),
) -> CurveSetup:
    """The learner fit_curve trains: Levenberg-Marquardt on `model` (a JacobianLearner
    with OptimizerStop), or `optimizer` on the whitened ScaledModel (with the
    convergence rule converged_rule())."""
    callbacks: list[Callback] = []
    kwargs: dict = {}
    if optimizer == "lm":
        residuals = Residuals(model.f, x, y, elementwise=getattr(model, "elementwise", False))
        trained, learner_class, lr = model, JacobianLearner, 1.0

        def make_opt(params, lr):
            return LevenbergMarquardt(params, residuals, tau=tau, shrink=shrink)

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


def _rss(model: FunctionModel, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(((model(x) - y) ** 2).sum())


__all__ = [
    "CurveFit",
    "CurveSetup",
    "check_start",
    "converged_rule",
    "fit_curve",
    "make_curve_learner",
]
