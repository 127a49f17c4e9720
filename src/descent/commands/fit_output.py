"""What `descent fit` leaves once the curve is fitted: the run folder's files (model,
metrics, params.json, uncertainty.json for `descent predict`, summary.json), the plots
(fit.png with its 95 % confidence band), an optional animation, and the printed
report (report/fit_text.py)."""

from __future__ import annotations

from pathlib import Path

import torch
from rich.console import Console

from descent.commands.runs import Finishing, write_summary
from descent.fitting.bands import Uncertainty, bands
from descent.fitting.curve import CurveFit
from descent.fitting.profile import ProfileInterval
from descent.fitting.summary import curve_summary
from descent.io.files import write_json
from descent.io.models import save_model
from descent.io.rundir import RunDir
from descent.models.formula import Formula
from descent.report.fit_text import print_fit_summary
from descent.report.html import write_run_report
from descent.report.plots import (
    plot_fit,
    plot_losses,
    plot_prediction_grid,
    save_animation,
    save_figure,
    schedule_plots,
)

BAND = 0.95  # the band fit.png shades


def finish_fit(
    cfg,
    curve: CurveFit,
    formula: Formula,
    x: torch.Tensor,
    y: torch.Tensor,
    run: RunDir,
    console: Console,
    finishing: Finishing,
    profile: dict[str, ProfileInterval] | None = None,
) -> dict:
    """Write the run folder's files and summary, print the report, then draw the plots
    and the animation (cut short by a signal: `finishing`). Returns the summary dict
    (summary.json)."""
    model, result = curve.model, curve.fit_result
    for name in ("model.safetensors", "model.json"):
        run.file(name)  # recorded as the run's before they are written
    save_model(model, run.path, y=cfg.y, inputs=formula.inputs)
    Uncertainty.of(curve, cfg.sigma).save(run.file("uncertainty.json"))
    run.write_metrics(result.history)
    write_json(
        run.file("params.json"),
        {"params": curve.params, "stderr": curve.stderr, "fixed": curve.fixed},
    )
    summary = {
        "formula": formula.text,
        "y": cfg.y,
        "inputs": formula.inputs,
        **curve_summary(curve, profile),
        "sigma": cfg.sigma,
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
    write_summary(run, summary, cfg.json)  # a complete run before any plot is drawn
    print_fit_summary(
        console.print, summary, f"{cfg.y} = {cfg.model}", f"  run: {run}/ {run.listing()}", ""
    )

    # The figures come after the numbers: drawing them takes longer than the fit.
    def drawings() -> list[Path]:
        plots = []
        if cfg.plots:
            plots = fit_plots(run, curve, formula, x, y, cfg) + schedule_plots(curve.learner, run)
        if cfg.animate:
            animate(cfg.animate, curve.snapshots, x, y, formula, cfg)
        return plots

    plots = finishing.draw(drawings)
    write_run_report(
        run.path, run.file("report.html"), run.own_plots()
    )  # from the files just written
    if made := run.plot_listing(plots):
        console.print(f"  plots: {run.plots}/ {made}")
    if finishing.signal is not None:
        console.print(finishing.note())
    return summary


def curve_x(x: torch.Tensor) -> torch.Tensor:
    """Where to draw the curve: 400 points over the data's range for one input;
    the data themselves for several inputs."""
    if x.dim() == 1:
        return torch.linspace(float(x.min()), float(x.max()), 400, dtype=x.dtype)
    return x


def fit_plots(run, curve: CurveFit, formula, x, y, cfg) -> list[Path]:
    model, result = curve.model, curve.fit_result
    with torch.no_grad():
        resid = model(x) - y
    one = x.dim() == 1
    grid = curve_x(x)
    band = bands(curve, grid, BAND)
    snap_x = grid
    if not one:  # several inputs: draw against the row number
        x, grid, snap_x = (torch.arange(len(y), dtype=y.dtype),) * 3
    xlabel = formula.inputs[0] if one else "row"
    figs = {
        "fit.png": plot_fit(
            x,
            y,
            grid,
            band.y_hat,
            residuals=resid,
            xlabel=xlabel,
            ylabel=cfg.y,
            title=f"{cfg.y} = {formula.text}",
            band=(band.y_hat - band.confidence, band.y_hat + band.confidence),
            band_label=f"{100 * BAND:.3g}% confidence band",
        ),
        "fit_steps.png": plot_prediction_grid(
            x, y, curve.snapshots, panels=6, curve_x=snap_x, label="step"
        ),
        "loss.png": plot_losses(result.history, title="loss (MSE)"),
    }
    return [save_figure(fig, run.plot(name)) for name, fig in figs.items()]


def animate(path: str, snapshots, x, y, formula, cfg) -> None:
    """A GIF of the curve moving toward the data, one frame per snapshot."""
    one = x.dim() == 1
    cx = curve_x(x) if one else torch.arange(len(y), dtype=y.dtype)
    save_animation(
        path, snapshots, x if one else cx, y, cx,
        xlabel=formula.inputs[0] if one else "row", ylabel=cfg.y,
        title=f"{cfg.y} = {formula.text}",
    )  # fmt: skip
