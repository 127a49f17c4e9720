"""`descent demo`: the book's roller-coaster, first as the book runs it, then to
convergence by standardising the input; then the 3-vs-7 pixel classifier on the
bundled MNIST sample. Plots and a summary for each."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from rich.console import Console

from descent.callbacks.snapshots import PredictionSnapshots
from descent.callbacks.stopping import Converged
from descent.commands.config import DemoConfig, TrainConfig
from descent.commands.train import TrainResult, train_command
from descent.core.learner import Learner
from descent.core.losses import mse
from descent.core.optim import hessian_eigenvalues
from descent.core.progress import ProgressDisplay
from descent.core.result import FitResult
from descent.data.batches import Batches
from descent.data.synthetic import quadratic, roller_coaster
from descent.io.files import atomic_write_text, write_json
from descent.io.rundir import RunDir
from descent.models.function import FunctionModel
from descent.report.plots import plot_fit, plot_losses, plot_prediction_grid, save_figure
from descent.report.text import heatmap_text


@dataclass
class DemoResult:
    book: FitResult  # the book's 10 steps
    converged: FitResult  # the standardised fit, run to convergence
    params: dict[str, float]  # a, b, c in raw time
    final_loss: float
    optimum_loss: float
    run_dir: RunDir
    digits: TrainResult


def plain_loop(t: torch.Tensor, speed: torch.Tensor, init: torch.Tensor, lr: float, steps: int):
    """The book's hand-written loop, for comparison: the oracle for step 5."""
    params = init.clone().requires_grad_()
    losses = []
    for _ in range(steps):
        loss = ((quadratic(t, params) - speed) ** 2).mean()
        losses.append(loss.item())
        loss.backward()
        params.data -= lr * params.grad.data
        params.grad = None
    return losses


def demo_command(
    cfg: DemoConfig, console: Console | None = None, *, overwrite: bool = False
) -> DemoResult:
    """`descent demo`: the roller-coaster twice (the book's settings, then to
    convergence) and 3 vs 7, into cfg.out (new or empty; `overwrite` replaces a previous
    descent run there)."""
    console = console or Console(highlight=False, soft_wrap=True)
    with RunDir.create(cfg.out, "demo", overwrite=overwrite) as run:
        return _demo(cfg, console, run)


def _demo(cfg: DemoConfig, console: Console, run: RunDir) -> DemoResult:
    say = _quiet if cfg.quiet else console.print  # the narrative; the summary always prints
    run.write_config({**cfg.to_dict(), "run_id": run.run_id})
    t, speed = roller_coaster(cfg.seed)  # (20,), (20,) float32, as in the book
    rows = (f"{a:g},{b!r}" for a, b in zip(t.tolist(), speed.tolist(), strict=True))
    atomic_write_text(run.file("roller_coaster.csv"), "time,speed\n" + "\n".join(rows) + "\n")
    init = torch.randn(3, generator=torch.Generator().manual_seed(cfg.seed))

    def callbacks(min_interval: float) -> list:
        return [] if cfg.quiet else [ProgressDisplay(console, min_interval=min_interval)]

    say(f"[bold]descent demo[/] - the book's roller-coaster (fastbook ch. 4), seed {cfg.seed}")
    say("data: time = 0..19, speed = randn(20)*3 + 0.75*(time-9.5)**2 + 1")

    # -- 1. the book's settings ------------------------------------------------------
    say(
        f"\n[bold]1. The book's settings[/]: speed = a*t**2 + b*t + c, MSE, plain SGD, "
        f"lr {cfg.book_lr:g}, params = randn(3) = {_fmt_list(init)}, {cfg.book_steps} steps"
    )
    book_model = FunctionModel(quadratic, ["a", "b", "c"], init)
    book_snaps = PredictionSnapshots(t, dense=cfg.book_steps)
    book = Learner(
        book_model, Batches(t, speed), loss=mse, optimizer="sgd", lr=cfg.book_lr, progress=False
    )
    book_result = book.fit(cfg.book_steps, callbacks=[*callbacks(0.0), book_snaps])
    ours = book_result.history.column("train_loss")
    theirs = plain_loop(t, speed, init, cfg.book_lr, len(ours))
    worst = max(abs(a - b) / abs(b) for a, b in zip(ours, theirs, strict=True))
    say(
        "A hand-written PyTorch loop gives the same losses "
        f"(largest relative difference {worst:.1e})."
    )

    # -- 2. why it is slow, and the fix ---------------------------------------------------
    t64, s64 = t.double(), speed.double()
    coef = np.polyfit(t64.numpy(), s64.numpy(), 2)  # the least-squares oracle
    optimum = float(np.mean((np.polyval(coef, t64.numpy()) - s64.numpy()) ** 2))
    raw_eigs = hessian_eigenvalues(FunctionModel(quadratic, "abc", init.double()), mse, t64, s64)
    lo, hi = float(raw_eigs[0]), float(raw_eigs[-1])
    steps_needed = math.log(1000) / (cfg.book_lr * lo)
    say(
        f"\n[bold]2. Why it is slow[/]: after {book_result.epochs} steps "
        f"the loss is {ours[-1]:.4g}, "
        f"the least-squares optimum is {optimum:.4g}. The loss's curvature is {hi:.3g} along "
        f"its steepest direction and {lo:.3g} along its flattest (condition number "
        f"{hi / lo:.2g}), because t**2 reaches {float(t.max()) ** 2:.0f} while 1 stays 1. "
        f"Gradient descent is stable only for lr < 2/{hi:.3g} = {2 / hi:.2g}, and at lr "
        f"{cfg.book_lr:g} it needs about {steps_needed:,.0f} steps to shrink the flattest "
        "direction's error 1000-fold."
    )
    mean, std = float(t64.mean()), float(t64.std())
    u = (t64 - mean) / std  # standardised time: mean 0, standard deviation 1
    std_model = FunctionModel(quadratic, ["A", "B", "C"], init.double())
    eigs = hessian_eigenvalues(std_model, mse, u, s64)
    lr = 1.0 / float(eigs[-1])
    say(
        f"The fix: [bold]standardise the input[/], u = (t - {mean:.2f}) / {std:.2f}, and fit the "
        f"same family of curves A*u**2 + B*u + C. Now the curvature runs from {float(eigs[0]):.3g} "
        f"to {float(eigs[-1]):.3g} (condition number {float(eigs[-1] / eigs[0]):.2g}), so plain "
        f"gradient descent can take lr = 1/{float(eigs[-1]):.3g} = {lr:.3g}, the largest step "
        "that overshoots in no direction."
    )
    fit_snaps = PredictionSnapshots(u, dense=2)
    learner = Learner(std_model, Batches(u, s64), loss=mse, optimizer="sgd", lr=lr, progress=False)
    stop = Converged(rtol=cfg.rtol, window=cfg.window)
    fit_result = learner.fit(cfg.max_epochs, callbacks=[*callbacks(0.25), stop, fit_snaps])

    # -- 3. results, files and plots --------------------------------------------------------
    A, B, C = std_model.params.detach().tolist()
    params = {
        "a": A / std**2,
        "b": B / std - 2 * A * mean / std**2,
        "c": A * mean**2 / std**2 - B * mean / std + C,
    }
    with torch.no_grad():
        final = float(mse(std_model(u), s64))
    run.write_metrics(fit_result.history)
    run.write_metrics(book_result.history, "book_metrics.csv")
    write_json(
        run.file("params.json"),
        {
            "raw_time": params,
            "standardised_time": {"A": A, "B": B, "C": C, "mean": mean, "std": std},
        },
    )
    plots = _demo_plots(
        run, t, speed, t64, s64, mean, std, book_snaps, fit_snaps, book_result, fit_result, params
    )
    summary = {
        "params": params,
        "polyfit": dict(zip("abc", coef.tolist(), strict=True)),
        "final_loss": final,
        "optimum_loss": optimum,
        "relative_gap": final / optimum - 1,
        "book": {
            "steps": book_result.steps,
            "final_loss": ours[-1],
            "seconds": book_result.seconds,
        },
        "fit": {
            "steps": fit_result.steps,
            "seconds": fit_result.seconds,
            "stopped": fit_result.stopped,
            "lr": lr,
            "standardisation": {"mean": mean, "std": std},
        },
    }
    write_json(run.file("summary.json"), summary)
    say = console.print
    say("\n[bold]Summary[/]")
    say("  fitted (raw time): " + ", ".join(f"{k} = {v:.6g}" for k, v in params.items()))
    say(
        "  numpy.polyfit:     " + ", ".join(f"{k} = {v:.6g}" for k, v in summary["polyfit"].items())
    )
    say(
        f"  final loss {final:.6g} vs least-squares optimum {optimum:.6g} "
        f"({100 * (final / optimum - 1):+.4f}%)"
    )
    say(
        f"  steps: {book_result.steps} (book, {book_result.seconds:.3f} s) + {fit_result.steps} "
        f"(standardised, {fit_result.seconds:.3f} s, stopped: {fit_result.stopped})"
    )
    say(
        f"  files: {run}/ config.json metrics.csv book_metrics.csv params.json summary.json "
        "roller_coaster.csv"
    )
    say(f"  plots: {run.plots}/ " + " ".join(p.name for p in plots))
    digits = _demo_digits(cfg, run, console, say)
    return DemoResult(book_result, fit_result, params, final, optimum, run, digits)


def _demo_digits(cfg: DemoConfig, run: RunDir, console: Console, say) -> TrainResult:
    """3 vs 7 by per-pixel weights, on the bundled MNIST sample, and its weights."""
    say(
        "\n[bold]3. Digits by per-pixel weights[/]: one weight per pixel, 3 vs 7 on the "
        "bundled MNIST sample; the score (x*w).sum() + b says 7 when above 0."
    )
    result = train_command(
        TrainConfig(classes=["3", "7"], out=str(run.subrun("digits")), quiet=cfg.quiet, seed=0),
        console,
    )
    weights = result.model.class_weights()[0].reshape(28, 28)
    if console.is_terminal:
        say("The learned weights (red: ink here says 7, blue: ink here says 3):")
        say(heatmap_text(weights), end="")
    say(f"The weight images: {result.run_dir.plots / 'weights.png'}")
    say(
        f'\nNext: descent fit {run.file("roller_coaster.csv")} --model "a*time**2 + b*time + c" '
        f"--y speed    |    descent predict {result.run_dir} some_digit.png"
    )
    return result


def _demo_plots(
    run, t, speed, t64, s64, mean, std, book_snaps, fit_snaps, book_result, fit_result, params
):
    a, b, c = params["a"], params["b"], params["c"]
    grid = torch.linspace(float(t.min()), float(t.max()), 200, dtype=torch.float64)
    resid = a * t64**2 + b * t64 + c - s64
    figs = {
        "fit.png": plot_fit(
            t64,
            s64,
            grid,
            a * grid**2 + b * grid + c,
            residuals=resid,
            xlabel="time",
            ylabel="speed",
            title="Converged fit (standardised time)",
        ),
        "book_steps.png": plot_prediction_grid(
            t, speed, book_snaps.snapshots, panels=5, label="step"
        ),
        "fit_steps.png": plot_prediction_grid(
            t64, s64, fit_snaps.snapshots, panels=6, label="step"
        ),
        "book_loss.png": plot_losses(book_result.history, title="The book's 10 steps (lr 1e-5)"),
        "loss.png": plot_losses(fit_result.history, log=True, title="Standardised fit"),
    }
    return [save_figure(fig, run.plot(name)) for name, fig in figs.items()]


def _quiet(*args: object, **kwargs: object) -> None:
    pass


def _fmt_list(t: torch.Tensor) -> str:
    return "[" + ", ".join(f"{v:.4f}" for v in t.tolist()) + "]"


__all__ = ["DemoResult", "demo_command", "plain_loop"]
