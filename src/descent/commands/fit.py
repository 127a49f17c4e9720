"""`descent fit`: a formula fitted to the columns of a CSV (fitting/curve.py's
fit_curve), with its run folder, standard errors, plots, an optional animation and a
summary."""

from __future__ import annotations

import copy
import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from rich.console import Console

from descent.callbacks.checkpointer import Checkpointer
from descent.commands.config import FitConfig, check_options
from descent.core.events import Callback, StopReason
from descent.core.learner import Learner
from descent.core.result import FitResult
from descent.data.batches import random_split
from descent.data.tables import check_enough_rows, read_table
from descent.errors import ConfigError
from descent.fitting.curve import (
    CurveFit,
    check_start,
    converged_rule,
    fit_curve,
    make_curve_learner,
)
from descent.io.checkpoints import ResumeFrom
from descent.io.files import atomic_write_bytes, write_json
from descent.io.models import save_model
from descent.io.rundir import RunDir, default_run_dir
from descent.models.formula import Formula, FormulaModel, parse_formula
from descent.options import FIT_DEFAULT_LR, parse_every
from descent.report.html import write_run_report
from descent.report.plots import (
    plot_fit,
    plot_losses,
    plot_lr_find,
    plot_prediction_grid,
    save_figure,
    schedule_plots,
)
from descent.tuning.lr_find import LRFindResult, lr_find
from descent.watch.session import WatchSession


@dataclass
class FitCommandResult:
    """What `descent fit` did: the curve fit, its run folder and its summary."""

    curve: CurveFit
    run_dir: RunDir
    summary: dict

    @property
    def fit_result(self) -> FitResult:
        return self.curve.fit_result

    @property
    def params(self) -> dict[str, float]:
        return self.curve.params

    @property
    def stderr(self) -> dict[str, float]:
        return self.curve.stderr


@dataclass
class FitData:
    """What `descent fit` reads: the checked formula and the columns it uses."""

    formula: Formula
    x: torch.Tensor  # (n,) for one input, (n, d) with columns in formula.inputs order
    y: torch.Tensor  # (n,)
    header: list[str]  # every column of the file
    dropped_rows: list[int]  # rows left out for missing values (--drop-missing)


def load_fit_data(cfg: FitConfig) -> FitData:
    """The formula and its columns from the CSV, checked against each other."""
    if not cfg.model:
        raise ConfigError('give the formula with --model, e.g. --model "a*t**2 + b*t + c"')
    if not cfg.y:
        raise ConfigError("give the column to fit with --y (the measured values)")
    header = read_table(cfg.data, columns=[]).header  # names only
    missing = [c for c in cfg.x or [] if c not in header]
    if missing:
        raise ConfigError(
            f"--x {', '.join(missing)}: no such column in {cfg.data}; "
            f"its columns are {', '.join(header)}"
        )
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
    return FitData(formula, x, y, table.header, table.dropped_rows)


def fit_command(
    cfg: FitConfig,
    console: Console | None = None,
    *,
    resume: ResumeFrom | None = None,
    callbacks: Sequence[Callback] = (),
    watch: WatchSession | None = None,
) -> FitCommandResult:
    """`descent fit`: read the CSV, fit, write the run directory, print the summary.
    `watch` (--watch) feeds the live page (the curve moving toward the data, the
    parameters) and takes its Stop."""
    console = console or Console(highlight=False, soft_wrap=True)
    say = (lambda *a, **k: None) if cfg.quiet else console.print
    check_options(cfg)  # before any file is read or written
    data = load_fit_data(cfg)
    formula, x, y = data.formula, data.x, data.y
    model = FormulaModel(formula, cfg.init)
    train_idx, valid_idx = random_split(len(y), cfg.valid_pct, cfg.seed)
    xt, yt = x[train_idx], y[train_idx]
    check_start(model, xt, yt)  # before the run folder is made
    found = None
    if cfg.lr == "auto":
        found = find_fit_lr(cfg, model, xt, yt, (x[valid_idx], y[valid_idx]))
        cfg = replace(cfg, lr=found.suggestion, lr_found=found.describe())
    run = RunDir(cfg.out or default_run_dir("fit"))
    cfg = replace(cfg, out=str(run))  # config.json names its own folder, for resume
    run.write_config(cfg.to_dict())
    checkpointer = Checkpointer(
        run.path / "checkpoints", parse_every(cfg.checkpoint_every), cfg.keep
    )
    say(
        f"[bold]descent fit[/] {cfg.data}: {cfg.y} = {formula.text}, inputs "
        f"{', '.join(formula.inputs)}, {len(yt)} rows"
        + (f" (+{len(valid_idx)} held out)" if len(valid_idx) else "")
        + (f", {len(data.dropped_rows)} dropped for missing values" if data.dropped_rows else "")
    )
    for name in formula.params:  # a misspelt column becomes a parameter: say so
        close = difflib.get_close_matches(name, data.header, n=1, cutoff=0.75)
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
    if watch is not None:  # (a future --by: one run id per group, see watch/session.py)
        callbacks = [*callbacks, *watch.callbacks(run.path.name, config=cfg.to_dict(),
                                                  **watch_curve(x, y))]  # fmt: skip
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
    if curve.fit_result.stopped == StopReason.INTERRUPTED:
        console.print(checkpointer.note(run, curve.fit_result.message))
    return _finish_fit(cfg, curve, formula, x, y, run, console)


def build_fit_learner(
    cfg: FitConfig, model: FormulaModel, x, y, valid=None, lr: float | None = None
) -> Learner:
    """The learner `descent fit` would train (on a copy of `model`), untrained: for
    the learning-rate tools."""
    check_start(model, x, y)
    setup = make_curve_learner(
        copy.deepcopy(model), x, y, valid=valid, optimizer=cfg.optimizer, lr=lr,
        momentum=cfg.momentum, scale=cfg.scale, snapshot_x=None, console=None,
    )  # fmt: skip
    return setup.learner


def find_fit_lr(cfg: FitConfig, model: FormulaModel, x, y, valid=None) -> LRFindResult:
    """The learning-rate finder on the fit's learner (whitened, as it will train)."""
    return lr_find(build_fit_learner(cfg, model, x, y, valid))


def _curve_x(x: torch.Tensor) -> torch.Tensor:
    """Where to draw the curve: 400 points over the data's range for one input;
    the data themselves for several inputs."""
    if x.dim() == 1:
        return torch.linspace(float(x.min()), float(x.max()), 400, dtype=x.dtype)
    return x


def watch_curve(x: torch.Tensor, y: torch.Tensor) -> dict:
    """What the live page draws of a fit: the data, and the curve where `_curve_x`
    puts it (against the row number when there are several inputs)."""
    grid = _curve_x(x)
    if x.dim() == 1:
        return {"grid": grid, "data": (x, y)}
    rows = torch.arange(len(y), dtype=y.dtype)
    return {"grid": grid, "grid_x": rows, "data": (rows, y)}


def _describe_solver(cfg: FitConfig) -> str:
    if cfg.optimizer == "lm":
        return (
            "solver: Levenberg-Marquardt on the residual Jacobian (autograd), float64, "
            "MINPACK scaling; stops when the next step is below 1e-6 standard errors"
        )
    scaled = ", parameters whitened by the starting Jacobian" if cfg.scale else ", no scaling"
    lr = cfg.lr if cfg.lr is not None else FIT_DEFAULT_LR.get(cfg.optimizer, math.nan)
    return (
        f"solver: {cfg.optimizer} lr {lr:g}{scaled}, float64; stops when {converged_rule().rule()}"
    )


def _finish_fit(cfg, curve, formula, x, y, run, console) -> FitCommandResult:
    model, result = curve.model, curve.fit_result
    save_model(model, run.path, y=cfg.y, inputs=formula.inputs)
    run.write_metrics(result.history)
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
    write_run_report(run.path)  # report.html, from the files just written
    if cfg.json:
        write_json(cfg.json, summary)
    _print_summary(console, curve, result, run, plots, cfg)
    return FitCommandResult(curve, run, summary)


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
    model, result = curve.model, curve.fit_result
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


__all__ = [
    "FitCommandResult",
    "FitData",
    "build_fit_learner",
    "find_fit_lr",
    "fit_command",
    "load_fit_data",
]
