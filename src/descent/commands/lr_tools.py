"""`descent lr-find` and `descent lr-sweep`: the learning-rate tools on any `train` or
`fit` configuration, with a run directory (plot + JSON) and a printed table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console

from descent.commands.config import FitConfig, TrainConfig, check_options
from descent.commands.fit import build_fit_learner, load_fit_data
from descent.commands.train import make_learner, prepare_data
from descent.core.learner import Learner
from descent.data.batches import random_split
from descent.distributed.threads import set_threads
from descent.io.files import write_json
from descent.io.limits import check_memory
from descent.io.rundir import RunDir, check_out, default_run_dir
from descent.models.formula import FormulaModel
from descent.options import (
    LR_FIND_END,
    LR_FIND_START,
    LR_FIND_STEPS,
    LR_SWEEP_EPOCHS,
    check_bounds,
)
from descent.report.plots import plot_lr_find, plot_sweep, save_figure
from descent.tuning.lr_find import LRFindResult, lr_find
from descent.tuning.sweep import SweepResult, lr_sweep
from descent.watch.session import WatchSession

# Tensors of a model's size per rate while lr-sweep trains: the copy, its gradient, its
# step direction and two optimizer moments, and the last finite copy kept for divergence.
SWEEP_COPIES = 6


@dataclass
class LRToolResult:
    """What `descent lr-find` or `descent lr-sweep` did: its folder, its summary, and
    the finder's or the sweep's result."""

    run_dir: RunDir
    summary: dict
    find: LRFindResult | None = None
    sweep: SweepResult | None = None


def _learner_for(cfg: TrainConfig | FitConfig, lr: float) -> Learner:
    """The learner that `descent train` / `descent fit` would build for cfg (a formula's
    on the CPU)."""
    set_threads(cfg.threads)
    if isinstance(cfg, TrainConfig):
        return make_learner(cfg, prepare_data(cfg), lr)
    if cfg.optimizer == "lm":
        cfg = replace(cfg, optimizer="sgd")
    data = load_fit_data(cfg)
    x, y = data.x, data.y
    train_idx, valid_idx = random_split(len(y), cfg.valid_pct, cfg.seed)
    return build_fit_learner(
        cfg, FormulaModel(data.formula, cfg.init), x[train_idx], y[train_idx],
        (x[valid_idx], y[valid_idx]), lr=lr,
    )  # fmt: skip


def _what(cfg: TrainConfig | FitConfig) -> str:
    if isinstance(cfg, TrainConfig):
        return f"train {cfg.source}, {cfg.model}, {cfg.optimizer}, batch {cfg.batch_size}"
    optimizer = "sgd" if cfg.optimizer == "lm" else cfg.optimizer
    scaled = ", whitened parameters" if cfg.scale else ""
    return f"fit {cfg.data}: {cfg.y} = {cfg.model}, {optimizer}{scaled}"


def lr_find_command(
    cfg: TrainConfig | FitConfig,
    *,
    start_lr: float = LR_FIND_START,
    end_lr: float = LR_FIND_END,
    steps: int = LR_FIND_STEPS,
    out: str | None = None,
    console: Console | None = None,
    overwrite: bool = False,
) -> LRToolResult:
    """The range test (tuning/lr_find.py) on cfg's learner; writes lr_find.png and
    lr_find.json into `out` (new or empty; `overwrite` replaces a previous descent run)."""
    console = console or Console(highlight=False, soft_wrap=True)
    check_options(cfg)
    check_bounds("iterations", steps)
    if out is not None:
        check_out(out, overwrite)
    learner = _learner_for(cfg, 1e-3)
    result = lr_find(learner, start_lr=start_lr, end_lr=end_lr, steps=steps)
    with RunDir.create(out or default_run_dir("lr-find"), "lr-find", overwrite=overwrite) as run:
        plot = save_figure(
            plot_lr_find(result, title=f"lr-find: {_what(cfg)}"), run.file("lr_find.png")
        )
        summary = {"config": cfg.to_dict(), "run_id": run.run_id, **result.to_json()}
        write_json(run.file("lr_find.json"), summary)
    console.print(f"[bold]descent lr-find[/] {_what(cfg)}")
    console.print(
        f"{len(result.lrs)} steps from {result.lrs[0]:.3g} to {result.lrs[-1]:.3g} "
        f"({result.stopped}), {result.monitor} measured after each, {result.seconds:.1f} s"
    )
    width = max(len(k) for k in result.suggestions)
    for name, lr in result.suggestions.items():
        mark = "  <- suggested" if name == result.choice else ""
        console.print(f"  {name:<{width}}  {lr:.3g}{mark}", markup=False)
    console.print(f"plot: {plot}   data: {run.path / 'lr_find.json'}")
    console.print(f"use it: --lr {result.suggestion:.3g} (or --lr auto)")
    return LRToolResult(run, summary, find=result)


def lr_sweep_command(
    cfg: TrainConfig | FitConfig,
    lrs: Sequence[float],
    *,
    epochs: int = LR_SWEEP_EPOCHS,
    out: str | None = None,
    console: Console | None = None,
    overwrite: bool = False,
    watch: WatchSession | None = None,
) -> LRToolResult:
    """K copies of cfg's model trained at K rates at once (tuning/sweep.py); writes
    sweep.png and sweep.json into `out` (new or empty; `overwrite` replaces a previous
    descent run) and prints each rate's losses. `watch` (--watch) draws a curve per rate
    on the live page; its Stop ends the sweep after the batch in progress, keeping the
    epochs completed (result.sweep.stopped "interrupted")."""
    console = console or Console(highlight=False, soft_wrap=True)
    check_options(cfg)
    check_bounds("epochs", epochs)
    if out is not None:
        check_out(out, overwrite)
    learner = _learner_for(cfg, 1e-3)
    copy_bytes = sum(p.numel() * p.element_size() for p in learner.model.parameters())
    check_memory(
        copy_bytes * len(lrs) * SWEEP_COPIES,
        f"lr-sweep with {len(lrs)} rates ({len(lrs)} copies of the model, each with its "
        f"gradient, optimizer state and step, x{SWEEP_COPIES})",
        "use fewer rates in --lrs",
    )
    folder = out or default_run_dir("lr-sweep")
    name = Path(folder).resolve().name
    feed, check = watch.sweep(name, config=cfg.to_dict()) if watch else (None, None)
    opt_name = cfg.optimizer if cfg.optimizer != "lm" else "sgd"
    opt_kwargs = {"momentum": cfg.momentum} if cfg.momentum else {}
    if isinstance(cfg, TrainConfig) and cfg.weight_decay:
        opt_kwargs["weight_decay"] = cfg.weight_decay
    result = lr_sweep(
        learner.model,
        learner.train_batches,
        learner.valid_batches,
        loss=learner.loss_func,
        lrs=list(lrs),
        epochs=epochs,
        optimizer=opt_name,
        opt_kwargs=opt_kwargs,
        metrics=learner.metrics,
        on_epoch=feed,
        on_batch=check,
    )
    if feed is not None:
        feed.end(result, result.stopped, result.message)
    with RunDir.create(folder, "lr-sweep", overwrite=overwrite) as run:
        plot = save_figure(plot_sweep(result), run.file("sweep.png"))
        summary = {"config": cfg.to_dict(), "run_id": run.run_id, **result.to_json()}
        write_json(run.file("sweep.json"), summary)
    console.print(
        f"[bold]descent lr-sweep[/] {_what(cfg)}: {len(result.lrs)} rates at once, "
        f"{epochs} epochs, {result.seconds:.1f} s"
    )
    if result.stopped != "max_epochs":
        console.print(f"stopped: {result.message}; the table has the epochs completed")
    console.print(result.table(), markup=False)
    best = (
        f"lr {result.best_lr:.3g}"
        if result.best_lr is not None
        else "none (every rate diverged: try lower rates)"
    )
    console.print(f"best: {best}   plot: {plot}   data: {run.path / 'sweep.json'}")
    return LRToolResult(run, summary, sweep=result)
