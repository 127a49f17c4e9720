"""fit_curve(): a formula fitted to data by least squares with descent's loop,
curve_fit's job: Levenberg-Marquardt by default, or sgd/adam/lbfgs on whitened
parameters; standard errors from the residual Jacobian. The `descent fit` command
around it (CSV, run folder, plots, summary) is fit_job.py."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from descent.data.batches import Batches
from descent.errors import ConfigError, FormulaError
from descent.events import Callback
from descent.learner import FitResult, Learner
from descent.levenberg import (
    LevenbergMarquardt,
    NotFinite,
    Residuals,
    decompose,
    require_finite,
    standard_errors,
)
from descent.models.formula import FormulaModel
from descent.models.function import FunctionModel
from descent.plots import PredictionSnapshots
from descent.progress import ProgressDisplay
from descent.resume import load_learner_state
from descent.schedules import Schedule, check_schedule
from descent.stopping import Converged, InterruptHandler, OptimizerStop

# In whitened parameters the curvature is ~1 in every direction: sgd is stable below 2.
DEFAULT_LR = {"sgd": 0.5, "adam": 1.0, "adamw": 1.0, "lbfgs": 1.0}
OPTIMIZERS = ("lm", *DEFAULT_LR)


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
    fit: FitResult
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
    resume: tuple[dict, Path] | None = None,
) -> CurveFit:
    """Fit `model` (a FormulaModel, changed in place) to y ~ model(x) by least squares.

    The Python form of `descent fit`: curve_fit's job, done by descent's loop.
    x is (n,) or (n, d); y is (n,). Returns the parameters, standard errors (from
    the residual Jacobian at the optimum), RSS and R^2. `console` shows the epoch
    table; `snapshot_x` records predictions there for plots and animations.
    `callbacks` join the first learner (not a retry), and `resume` = (state,
    checkpoint path) continues it from a checkpoint."""
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
        learner, snaps = make_fit_learner(model, x, y, **opts, extra=callbacks)
        if resume is not None:
            load_learner_state(learner, *resume)
        result = learner.fit(epochs)
    except NotFinite as e:
        check_start(model, x, y)  # raises, saying where
        raise FormulaError(f"{e}; choose other starting values (--init name=value)") from None
    if optimizer == "lm" and result.stopped in ("max_epochs", "no_progress"):
        # One retry from the start with strong damping (MINPACK's tau = 0.1 style):
        # it rescues very poor starts; the better of the two fits is kept.
        retry_model = copy.deepcopy(model)
        with torch.no_grad():
            retry_model.params.copy_(init)
        retry, retry_snaps = make_fit_learner(retry_model, x, y, **opts, tau=0.1, shrink=1 / 3)
        if console is not None:
            console.print(f"stopped: {result.stopped}; retrying from the start with strong damping")
        retry_result = retry.fit(epochs)
        if _rss(retry_model, x, y) < _rss(model, x, y):
            with torch.no_grad():
                model.params.copy_(retry_model.params)
            learner, result, snaps = retry, retry_result, retry_snaps
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
        fit=result,
        model=model,
        learner=learner,
        snapshots=snaps.snapshots if snaps is not None else [],
    )


def check_fit_options(optimizer: str, lr, momentum: float, schedule: str) -> None:
    """ConfigError for a combination of solver options that cannot work."""
    if optimizer not in OPTIMIZERS:
        raise ConfigError(
            f"unknown --optimizer {optimizer!r}: choose one of {', '.join(OPTIMIZERS)}"
        )
    if optimizer == "lm" and lr == "auto":
        raise ConfigError(
            "--lr auto finds a learning rate, and --optimizer lm takes none: "
            "use --optimizer sgd, adam or lbfgs with it"
        )
    if optimizer == "lm" and lr is not None:
        raise ConfigError(
            "--lr has no effect with --optimizer lm, which chooses its own steps; "
            "use --optimizer sgd, adam or lbfgs to set a learning rate"
        )
    if momentum and optimizer != "sgd":
        raise ConfigError(f"--momentum is for --optimizer sgd, not {optimizer}")
    if check_schedule(schedule) != "constant" and optimizer == "lm":
        raise ConfigError(
            f"--schedule {schedule} changes a learning rate, and --optimizer lm has none: "
            "use it with --optimizer sgd, adam or lbfgs"
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


def make_fit_learner(
    model,
    x,
    y,
    *,
    valid,
    optimizer,
    lr,
    momentum,
    scale,
    snapshot_x,
    console,
    tau=1e-4,
    shrink=1 / 30,
    extra=(),
):
    callbacks: list = []
    if optimizer == "lm":
        residuals = Residuals(model.f, x, y, elementwise=getattr(model, "elementwise", False))
        trained, lr, kwargs = model, 1.0, {}

        def make_opt(params, lr):
            return LevenbergMarquardt(params, residuals, tau=tau, shrink=shrink)

        callbacks.append(OptimizerStop())
    else:
        trained = ScaledModel(model, x, y) if scale else model
        make_opt = optimizer
        lr = lr if lr is not None else DEFAULT_LR[optimizer]
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
        # Converged: the loss changed by less than 1e-12 of itself over 20 epochs.
        callbacks.append(Converged(rtol=1e-12, window=20))
    snaps = PredictionSnapshots(snapshot_x, dense=40) if snapshot_x is not None else None
    if snaps is not None:
        callbacks.append(snaps)
    if console is not None:
        callbacks.append(ProgressDisplay(console))
    callbacks += extra
    lm = optimizer == "lm"
    if lm:
        # Levenberg-Marquardt only accepts steps that lower the sum of squares: it cannot
        # diverge, so of the default guards it needs only the interrupt handler.
        callbacks.insert(0, InterruptHandler())
    learner = Learner(
        trained,
        Batches(x, y),
        Batches(*valid) if valid is not None and len(valid[1]) else None,
        loss="mse",
        optimizer=make_opt,
        lr=lr,
        opt_kwargs=kwargs,
        callbacks=callbacks,
        progress=False,
        guards=not lm,
    )
    return learner, snaps


def _rss(model: FunctionModel, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(((model(x) - y) ** 2).sum())


__all__ = ["CurveFit", "ScaledModel", "check_start", "fit_curve", "make_fit_learner"]
