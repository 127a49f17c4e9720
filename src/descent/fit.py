"""`descent fit`: a formula fitted to the columns of a CSV by gradient-based
least squares, with standard errors, plots, an optional animation and a summary."""

from __future__ import annotations

import copy
import difflib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from descent.checkpoint import RunDir, save_model, write_json
from descent.config import FitConfig, check_options
from descent.data.batches import Batches, random_split
from descent.data.tables import check_enough_rows, read_table
from descent.errors import ConfigError, FormulaError
from descent.events import Callback
from descent.learner import FitResult, Learner
from descent.levenberg import (
    LevenbergMarquardt,
    NotFinite,
    Residuals,
    decompose,
    standard_errors,
)
from descent.lr_find import lr_find, plot_lr_find
from descent.models.formula import FormulaModel, parse_formula
from descent.models.function import FunctionModel
from descent.plots import (
    PredictionSnapshots,
    plot_fit,
    plot_losses,
    plot_prediction_grid,
    save_figure,
)
from descent.progress import ProgressDisplay
from descent.resume import Checkpointer, interrupted_note, load_learner_state, parse_every
from descent.schedules import Schedule, check_schedule, schedule_plots
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
        if not (math.isfinite(float(r @ r)) and math.isfinite(float(jt.sum()))):
            raise NotFinite("the residuals or their Jacobian are not finite at the start")
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


@dataclass
class FitJobResult:
    curve: CurveFit
    run_dir: RunDir
    summary: dict

    @property
    def fit(self) -> FitResult:
        return self.curve.fit

    @property
    def params(self) -> dict[str, float]:
        return self.curve.params

    @property
    def stderr(self) -> dict[str, float]:
        return self.curve.stderr


def load_fit_data(cfg: FitConfig):
    """(formula, x (n,) or (n, d), y (n,), table) from the CSV and the formula."""
    if not cfg.model:
        raise ConfigError('give the formula with --model, e.g. --model "a*t**2 + b*t + c"')
    if not cfg.y:
        raise ConfigError("give the column to fit with --y (the measured values)")
    header = read_table(cfg.data, columns=[]).header if not cfg.x else None  # names only
    candidates = cfg.x or [c for c in header if c != cfg.y]
    formula = parse_formula(cfg.model, candidates)
    if cfg.y in formula.inputs:
        raise ConfigError(f"--y {cfg.y} is also an input of the formula; fit it to another column")
    if cfg.x:
        unused = [c for c in cfg.x if c not in formula.inputs]
        if unused:
            raise ConfigError(
                f"--x {', '.join(unused)}: not used by the formula {cfg.model!r} "
                f"(it uses {', '.join(formula.inputs) or 'no input'})"
            )
    if not formula.inputs:
        raise ConfigError(
            f"the formula {cfg.model!r} uses no column of {cfg.data}: its names are "
            f"{', '.join(formula.params)}; name an input after a column (or pass --x)"
        )
    table = read_table(cfg.data, columns=[*formula.inputs, cfg.y], drop_missing=cfg.drop_missing)
    x, y = table.select(formula.inputs, cfg.y)
    check_enough_rows(table.n_rows, len(formula.params), cfg.data)
    return formula, x, y, table


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
        learner, snaps = _make_learner(model, x, y, **opts, extra=callbacks)
        if resume is not None:
            load_learner_state(learner, *resume)
        result = learner.fit(epochs)
    except NotFinite:
        check_start(model, x, y)  # says where
        raise  # (not reached: check_start finds what the solver found)
    if optimizer == "lm" and result.stopped in ("max_epochs", "no_progress"):
        # One retry from the start with strong damping (MINPACK's tau = 0.1 style):
        # it rescues very poor starts; the better of the two fits is kept.
        retry_model = copy.deepcopy(model)
        with torch.no_grad():
            retry_model.params.copy_(init)
        retry, retry_snaps = _make_learner(retry_model, x, y, **opts, tau=0.1, shrink=1 / 3)
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
    if optimizer == "lm" and lr is not None and lr != "auto":
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


def _make_learner(
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


def run_fit(
    cfg: FitConfig,
    console: Console | None = None,
    *,
    resume: tuple[dict, Path] | None = None,
    callbacks: Sequence[Callback] = (),
) -> FitJobResult:
    """`descent fit`: read the CSV, fit, write the run directory, print the summary."""
    console = console or Console(highlight=False, soft_wrap=True)
    say = (lambda *a, **k: None) if cfg.quiet else console.print
    check_options(cfg)
    if cfg.lr == "auto" and cfg.optimizer == "lm":
        raise ConfigError(
            "--lr auto finds a learning rate, and --optimizer lm takes none: "
            "use --optimizer sgd, adam or lbfgs with it"
        )
    check_fit_options(cfg.optimizer, cfg.lr, cfg.momentum, cfg.schedule)
    formula, x, y, table = load_fit_data(cfg)
    model = FormulaModel(formula, cfg.init)
    train_idx, valid_idx = random_split(len(y), cfg.valid_pct, cfg.seed)
    xt, yt = x[train_idx], y[train_idx]
    check_start(model, xt, yt)  # before the run folder is made
    found = None
    if cfg.lr == "auto":
        found = find_fit_lr(cfg, model, xt, yt, (x[valid_idx], y[valid_idx]))
        cfg = replace(cfg, lr=found.suggestion, lr_found=found.describe())
    elif cfg.lr is not None and not isinstance(cfg.lr, (int, float)):
        raise ConfigError(f"--lr must be a number or auto, got {cfg.lr!r}")
    run = RunDir(cfg.out or f"runs/fit-{time.strftime('%Y%m%d-%H%M%S')}")
    cfg = replace(cfg, out=str(run))  # config.json names its own folder, for resume
    run.write_config(cfg.to_dict())
    checkpointer = Checkpointer(
        run.path / "checkpoints", parse_every(cfg.checkpoint_every), cfg.keep
    )
    say(
        f"[bold]descent fit[/] {cfg.data}: {cfg.y} = {formula.text}, inputs "
        f"{', '.join(formula.inputs)}, {len(yt)} rows"
        + (f" (+{len(valid_idx)} held out)" if len(valid_idx) else "")
        + (f", {len(table.dropped_rows)} dropped for missing values" if table.dropped_rows else "")
    )
    for name in formula.params:  # a misspelt column becomes a parameter: say so
        close = difflib.get_close_matches(name, table.header, n=1, cutoff=0.75)
        if close:
            console.print(
                f"[yellow]warning:[/] {name!r} is not a column, so it is fitted as a parameter; "
                f"did you mean the column {close[0]!r}?"
            )
    say("start: " + ", ".join(f"{k} = {v:.6g}" for k, v in model.values().items()))
    if found is not None and cfg.plots:
        save_figure(plot_lr_find(found), run.plots / "lr_find.png")
        say(f"--lr auto: {found.describe()}; plot {run.plots / 'lr_find.png'}")
    elif found is not None:
        say(f"--lr auto: {found.describe()}")
    say(_describe_solver(cfg))
    curve = fit_curve(
        model,
        xt,
        yt,
        valid=(x[valid_idx], y[valid_idx]),
        optimizer=cfg.optimizer,
        lr=cfg.lr,
        momentum=cfg.momentum,
        epochs=cfg.epochs,
        scale=cfg.scale,
        schedule=cfg.schedule,
        snapshot_x=_curve_x(x),
        console=None if cfg.quiet else console,
        callbacks=[checkpointer, *callbacks],
        resume=resume,
    )
    if curve.fit.stopped == "interrupted":
        console.print(interrupted_note(run, curve.fit, checkpointer))
    return _finish_fit(cfg, curve, formula, x, y, run, console)


def fit_learner(cfg: FitConfig, model, x, y, valid=None, lr: float | None = None):
    """The learner `descent fit` would train (a copy of `model`), for the lr tools."""
    check_start(model, x, y)
    learner, _ = _make_learner(
        copy.deepcopy(model), x, y, valid=valid, optimizer=cfg.optimizer, lr=lr,
        momentum=cfg.momentum, scale=cfg.scale, snapshot_x=None, console=None,
    )  # fmt: skip
    return learner


def find_fit_lr(cfg: FitConfig, model, x, y, valid=None):
    """The learning-rate finder on the fit's learner (whitened, as it will train)."""
    return lr_find(fit_learner(cfg, model, x, y, valid))


def _curve_x(x: torch.Tensor) -> torch.Tensor:
    """Where to draw the curve: 400 points over the data's range for one input;
    the data themselves for several inputs."""
    if x.dim() == 1:
        return torch.linspace(float(x.min()), float(x.max()), 400, dtype=x.dtype)
    return x


def _describe_solver(cfg: FitConfig) -> str:
    if cfg.optimizer == "lm":
        return (
            "solver: Levenberg-Marquardt on the residual Jacobian (autograd), float64, "
            "MINPACK scaling; stops when the next step is below 1e-6 standard errors"
        )
    scaled = ", parameters whitened by the starting Jacobian" if cfg.scale else ", no scaling"
    lr = cfg.lr if cfg.lr is not None else DEFAULT_LR.get(cfg.optimizer, math.nan)
    return (
        f"solver: {cfg.optimizer} lr {lr:g}{scaled}, float64; stops when the loss changes by "
        "less than 1e-12 (relative) over 20 epochs"
    )


def _rss(model: FunctionModel, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(((model(x) - y) ** 2).sum())


def _finish_fit(cfg, curve, formula, x, y, run, console):
    model, result = curve.model, curve.fit
    save_model(model, run.path, y=cfg.y, inputs=formula.inputs)
    result.history.save_csv(run.file("metrics.csv"))
    write_json(run.file("params.json"), {"params": curve.params, "stderr": curve.stderr})
    plots = _fit_plots(run, curve, formula, x, y, cfg) if cfg.plots else []
    if cfg.plots:
        plots += schedule_plots(curve.learner, run)
    if cfg.animate:
        _animate(cfg.animate, curve.snapshots, x, y, formula, cfg)
    summary = {
        "formula": formula.text,
        "y": cfg.y,
        "inputs": formula.inputs,
        "params": curve.params,
        "stderr": curve.stderr,
        "stderr_note": curve.stderr_note,
        "correlation": curve.correlation,
        "rss": curve.rss,
        "r2": curve.r2,
        "n": curve.n,
        "dof": curve.n - len(curve.params),
        "optimizer": cfg.optimizer,
        "lr": cfg.lr,
        "lr_found": cfg.lr_found,
        "schedule": cfg.schedule,
        "stopped": result.stopped,
        "message": result.message,
        "steps": result.steps,
        "seconds": result.seconds,
        "history": result.history.to_records(),
        "run_dir": str(run),
    }
    write_json(run.file("summary.json"), summary)
    if cfg.json:
        write_json(cfg.json, summary)
    _print_summary(console, curve, result, run, plots, cfg)
    return FitJobResult(curve, run, summary)


def _print_summary(console, curve, result, run, plots, cfg):
    say = console.print
    params, stderr, note, rss, r2 = (
        curve.params,
        curve.stderr,
        curve.stderr_note,
        curve.rss,
        curve.r2,
    )
    corr, n, p = torch.tensor(curve.correlation), curve.n, len(curve.params)
    say(f"\n[bold]Fitted parameters[/] ({cfg.y} = {cfg.model})")
    width = max(len(k) for k in params)
    say(f"  {'':<{width}}  {'value':>16}  {'std error':>12}  {'rel.':>8}")
    for k, v in params.items():
        e = stderr[k]
        rel = f"{100 * e / abs(v):.3g}%" if v and math.isfinite(e) else "-"
        say(f"  {k:<{width}}  {v:>16.10g}  {e:>12.5g}  {rel:>8}")
    if note:
        say(f"  [yellow]warning:[/] standard errors cannot be estimated: {note}")
    say(f"  RSS {rss:.10g}   R² {r2:.8f}   n {n}, p {p}, dof {n - p}")
    strong = [
        f"{a}-{b} {corr[i, j]:+.3f}"
        for i, a in enumerate(params)
        for j, b in enumerate(params)
        if j > i and math.isfinite(float(corr[i, j])) and abs(float(corr[i, j])) > 0.95
    ]
    if strong:
        say("  strongly correlated: " + ", ".join(strong))
    say(
        f"  {result.steps} steps ({cfg.optimizer}), {result.seconds:.3f} s, "
        f"stopped: {result.stopped} - {result.message}"
    )
    say(f"  run: {run}/ {run.listing()}")
    if made := run.plot_listing(plots):
        say(f"  plots: {run.plots}/ {made}")


def _fit_plots(run, curve, formula, x, y, cfg) -> list[Path]:
    model, result = curve.model, curve.fit
    with torch.no_grad():
        resid = model(x) - y
        one = x.dim() == 1
        grid = _curve_x(x)
        curve_y = model(grid)
        snap_x = grid
        if not one:  # several inputs: draw against the row number
            x, grid, snap_x = (torch.arange(len(y), dtype=y.dtype),) * 3
    xlabel = formula.inputs[0] if one else "row"
    figs = {
        "fit.png": plot_fit(
            x,
            y,
            grid,
            curve_y,
            residuals=resid,
            xlabel=xlabel,
            ylabel=cfg.y,
            title=f"{cfg.y} = {formula.text}",
        ),
        "fit_steps.png": plot_prediction_grid(
            x, y, curve.snapshots, panels=6, curve_x=snap_x, label="step"
        ),
        "loss.png": plot_losses(result.history, title="loss (MSE)"),
    }
    return [save_figure(fig, run.plots / name) for name, fig in figs.items()]


def _animate(path: str, snapshots, x, y, formula, cfg) -> None:
    """A GIF of the curve moving toward the data, one frame per snapshot."""
    import matplotlib.animation as animation
    from matplotlib.figure import Figure

    from descent.checkpoint import atomic_write_bytes

    one = x.dim() == 1
    cx = _curve_x(x) if one else torch.arange(len(y), dtype=y.dtype)
    px = x if one else cx
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    ax.scatter(px.numpy(), y.numpy(), s=12, color="tab:blue")
    (line,) = ax.plot([], [], color="tab:red")
    lo, hi = float(y.min()), float(y.max())
    pad = 0.15 * (hi - lo or 1.0)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel(formula.inputs[0] if one else "row")
    ax.set_ylabel(cfg.y)
    title = ax.set_title("")

    def draw(i):
        epoch, preds = snapshots[i]
        line.set_data(cx.numpy(), preds.numpy())
        title.set_text(f"{cfg.y} = {formula.text}   step {epoch}")
        return line, title

    anim = animation.FuncAnimation(fig, draw, frames=len(snapshots), blit=False)
    target = Path(path)
    if target.suffix.lower() != ".gif":
        raise ConfigError(f"--animate {path}: the animation is written as GIF; name it *.gif")
    tmp = target.with_name(f".{target.name}.tmp.gif")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        anim.save(tmp, writer=animation.PillowWriter(fps=4))
        atomic_write_bytes(target, tmp.read_bytes())
    finally:
        tmp.unlink(missing_ok=True)


__all__ = ["CurveFit", "FitJobResult", "ScaledModel", "fit_curve", "load_fit_data", "run_fit"]
