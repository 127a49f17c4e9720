"""`descent fit`: a formula fitted to the columns of a CSV (fitting/curve.py's
fit_curve), with its run folder, standard errors, plots, an optional animation and a
summary (commands/fit_output.py). `--by COL` is commands/fit_groups.py."""

from __future__ import annotations

import copy
import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch
from rich.console import Console

from descent.callbacks.checkpointer import Checkpointer
from descent.commands.config import FitConfig, check_options
from descent.commands.fit_output import curve_x, finish_fit
from descent.commands.runs import (
    Continuation,
    Finishing,
    check_outputs,
    start_run,
    with_absolute_paths,
)
from descent.core.events import Callback, StopReason
from descent.core.learner import Learner
from descent.core.result import FitResult
from descent.data.batches import random_split
from descent.data.table_rows import read_text_column
from descent.data.tables import check_enough_rows, read_table
from descent.distributed.threads import set_threads
from descent.errors import ConfigError
from descent.fitting.curve import (
    CurveFit,
    check_start,
    converged_rule,
    fit_curve,
    free_model,
    make_curve_learner,
    prepare_start,
)
from descent.fitting.fixed import FreeParameters, parse_fixed
from descent.fitting.profile import ProfileInterval, profile_intervals
from descent.fitting.weights import check_sigma
from descent.io.rundir import RunDir
from descent.models.formula import Formula, FormulaModel, parse_formula
from descent.options import FIT_DEFAULT_LR, parse_every
from descent.report.plots import plot_lr_find, save_figure
from descent.tuning.lr_find import LRFindResult, lr_find
from descent.watch.session import WatchSession


@dataclass
class FitCommandResult:
    """What `descent fit` did: the curve fit, its run folder and its summary."""

    curve: CurveFit
    run_dir: RunDir
    summary: dict
    finish_signal: str | None = None  # a signal that came while the run wrote its files
    profile: dict[str, ProfileInterval] | None = None  # with --ci profile

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
    sigma: torch.Tensor | None = field(default=None, repr=False)  # (n,) with --sigma COL


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
    candidates = cfg.x or [c for c in header if c not in (cfg.y, cfg.sigma, cfg.by)]
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
    for option, name in (("--sigma", cfg.sigma), ("--by", cfg.by)):
        if name is not None and name in header and name in formula.params:  # taken from x
            raise ConfigError(
                f"{option} {name}: that column is an input of the formula {cfg.model!r}; "
                "name another column"
            )
    if not formula.inputs:
        raise ConfigError(
            f"the formula {cfg.model!r} uses no column of {cfg.data}: its names are "
            f"{', '.join(formula.params)}; name an input after a column (or pass --x)"
        )
    for option, name in (("--sigma", cfg.sigma), ("--by", cfg.by)):
        check_extra_column(option, name, header, [*formula.inputs, cfg.y], cfg.data)
    sigma_col = [cfg.sigma] if cfg.sigma else []
    table = read_table(
        cfg.data, columns=[*formula.inputs, cfg.y, *sigma_col], drop_missing=cfg.drop_missing
    )
    x, y = table.select(formula.inputs, cfg.y)
    free = len(formula.params) - len(parse_fixed(cfg.fix, formula.params))
    if cfg.by is None:
        check_enough_rows(table.n_rows, free, cfg.data)
    sigma = None
    if cfg.sigma is not None:

        def line(k: int) -> int:  # the file line of data row k, for the message
            return int(read_text_column(cfg.data, cfg.y).without(table.dropped_rows).lines[k])

        what = f"{cfg.data}: --sigma {cfg.sigma}"
        sigma = check_sigma(table.columns[cfg.sigma], what, len(y), line)
    return FitData(formula, x, y, table.header, table.dropped_rows, sigma)


def check_extra_column(
    option: str, name: str | None, header: list[str], used: list[str], path: str
) -> None:
    """ConfigError unless column `name` (--sigma or --by) exists and is not an input or y."""
    if name is None:
        return
    if name not in header:
        close = difflib.get_close_matches(name, header, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"{option} {name}: no such column in {path}{hint}; its columns are {', '.join(header)}"
        )
    if name in used:
        raise ConfigError(
            f"{option} {name}: that column is already the formula's input or --y; "
            f"name another column"
        )


def fit_command(
    cfg: FitConfig,
    console: Console | None = None,
    *,
    overwrite: bool = False,
    resume: Continuation | None = None,
    callbacks: Sequence[Callback] = (),
    watch: WatchSession | None = None,
) -> FitCommandResult:
    """`descent fit`: read the CSV, fit, write the run directory, print the summary.

    The run folder (cfg.out) must be new or empty; `overwrite` replaces a previous
    descent run there. `resume` continues a run from a checkpoint (commands/resume.py).
    `watch` (--watch) feeds the live page (the curve moving toward the data, the
    parameters) and takes its Stop."""
    console = console or Console(highlight=False, soft_wrap=True)
    say = (lambda *a, **k: None) if cfg.quiet else console.print
    check_options(cfg)  # before any file is read or written
    set_threads(cfg.threads)
    check_outputs(cfg, overwrite, resuming=resume is not None)
    cfg = with_absolute_paths(cfg)
    data = load_fit_data(cfg)
    formula, x, y = data.formula, data.x, data.y
    model = FormulaModel(formula, cfg.init)
    bounds, fixed = prepare_start(model, cfg.bounds, cfg.fix)  # checked, fixed values set
    train_idx, valid_idx = random_split(len(y), cfg.valid_pct, cfg.seed)
    xt, yt = x[train_idx], y[train_idx]
    st = None if data.sigma is None else data.sigma[train_idx]
    check_start(model, xt, yt)  # before the run folder is made
    found = None
    if cfg.lr == "auto":
        found = find_fit_lr(cfg, model, xt, yt, (x[valid_idx], y[valid_idx]))
        cfg = replace(cfg, lr=found.suggestion, lr_found=found.describe())
    run, cfg = start_run(
        cfg, "fit", cfg.data, overwrite=overwrite, continuation=resume,
        warn=lambda m: console.print(f"[yellow]warning:[/] {m}"),
    )  # fmt: skip
    try:
        checkpointer = Checkpointer(
            run.checkpoints, parse_every(cfg.checkpoint_every), cfg.keep, {"run_id": run.run_id}
        )
        say(
            f"[bold]descent fit[/] {cfg.data}: {cfg.y} = {formula.text}, inputs "
            f"{', '.join(formula.inputs)}, {len(yt)} rows"
            + (f" (+{len(valid_idx)} held out)" if len(valid_idx) else "")
            + (
                f", {len(data.dropped_rows)} dropped for missing values"
                if data.dropped_rows
                else ""
            )
        )
        for name in formula.params:  # a misspelt column becomes a parameter: say so
            close = difflib.get_close_matches(name, data.header, n=1, cutoff=0.75)
            if close:
                console.print(
                    f"[yellow]warning:[/] {name!r} is not a column, so it is fitted as a "
                    f"parameter; did you mean the column {close[0]!r}?"
                )
        say("start: " + ", ".join(f"{k} = {v:.6g}" for k, v in model.values().items()))
        if found is not None and cfg.plots:
            save_figure(plot_lr_find(found), run.plot("lr_find.png"))
            say(f"--lr auto: {found.describe()}; plot {run.plots / 'lr_find.png'}")
        elif found is not None:
            say(f"--lr auto: {found.describe()}")
        say(_describe_solver(cfg))
        if watch is not None:
            callbacks = [*callbacks, *watch.callbacks(run.path.name, config=cfg.to_dict(),
                                                      **watch_curve(x, y))]  # fmt: skip
        with Finishing() as finishing:
            curve = fit_curve(
                model,
                xt,
                yt,
                sigma=st,
                absolute_sigma=cfg.absolute_sigma,
                bounds=bounds,
                fixed=fixed,
                valid=(x[valid_idx], y[valid_idx]),
                optimizer=cfg.optimizer,
                lr=cfg.lr,
                momentum=cfg.momentum,
                epochs=cfg.epochs,
                scale=cfg.scale,
                schedule=cfg.schedule,
                snapshot_x=curve_x(x),
                console=None if cfg.quiet else console,
                callbacks=[checkpointer, *callbacks],
                resume=None if resume is None else resume.checkpoint,
                device=cfg.device,
            )
            model.cpu()  # the report, plots and files read it on the CPU
            if curve.fit_result.stopped == StopReason.INTERRUPTED:
                console.print(checkpointer.note(run, curve.fit_result.message))
            profile = None
            if cfg.ci == "profile" and curve.fit_result.stopped != StopReason.INTERRUPTED:
                say("--ci profile: refitting along each free parameter's profile")
                profile = profile_intervals(curve)
            summary = finish_fit(cfg, curve, formula, x, y, run, console, finishing, profile)
            return FitCommandResult(curve, run, summary, finishing.signal, profile)
    finally:
        if resume is None:
            run.close()


def build_fit_learner(
    cfg: FitConfig, model: FormulaModel, x, y, valid=None, lr: float | None = None
) -> Learner:
    """The learner `descent fit` would train (on a copy of `model`), untrained: for
    the learning-rate tools."""
    check_start(model, x, y)
    model = copy.deepcopy(model)
    _, fixed = prepare_start(model, cfg.bounds, cfg.fix)
    setup = make_curve_learner(
        free_model(model, FreeParameters(model.names, fixed)), x, y, valid=valid,
        optimizer=cfg.optimizer, lr=lr, momentum=cfg.momentum, scale=cfg.scale,
        snapshot_x=None, console=None,
    )  # fmt: skip
    return setup.learner


def find_fit_lr(cfg: FitConfig, model: FormulaModel, x, y, valid=None) -> LRFindResult:
    """The learning-rate finder on the fit's learner (whitened, as it will train)."""
    return lr_find(build_fit_learner(cfg, model, x, y, valid))


def watch_curve(x: torch.Tensor, y: torch.Tensor) -> dict:
    """What the live page draws of a fit: the data, and the curve where `curve_x`
    puts it (against the row number when there are several inputs)."""
    grid = curve_x(x)
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


__all__ = [
    "FitCommandResult",
    "FitData",
    "build_fit_learner",
    "find_fit_lr",
    "fit_command",
    "load_fit_data",
]
