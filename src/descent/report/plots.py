"""Figures with matplotlib, imported lazily (`import descent` stays light).

Every function returns a matplotlib Figure (not pyplot state) that shows inline
when it is the last value of a notebook cell, with no `%matplotlib` line
(report/figure.py), and `save_figure` writes it atomically for the run directory.
matplotlib is imported when the first figure is made, never by importing this
module; pyplot never.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from descent.callbacks.schedules import Schedule
from descent.core.history import History
from descent.errors import ConfigError
from descent.io.files import atomic_write_bytes

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure(width: float, height: float) -> Figure:
    from descent.report.figure import new_figure  # imports matplotlib

    return new_figure(width, height)


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Render `fig` to PNG (or the suffix's format) and write it atomically."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    buf = io.BytesIO()
    if fmt == "png" and _savefig_defaults():
        _print_png(fig, buf, dpi)
    else:
        fig.savefig(buf, format=fmt, dpi=dpi)
    atomic_write_bytes(path, buf.getvalue())
    return path


def save_animation(
    path: str | Path,
    snapshots: Sequence[tuple[int, torch.Tensor]],
    x: torch.Tensor,
    y: torch.Tensor,
    curve_x: torch.Tensor,
    *,
    xlabel: str = "x",
    ylabel: str = "y",
    title: str = "",
) -> Path:
    """A GIF of the curve (predictions on curve_x) moving toward the data points (x, y),
    one frame per snapshot (step, predictions), written atomically."""
    import matplotlib.animation as animation

    from descent.errors import ConfigError, OutputError

    target = Path(path)
    if target.suffix.lower() != ".gif":
        raise ConfigError(f"--animate {path}: the animation is written as GIF; name it *.gif")
    fig = _figure(6, 4)
    ax = fig.subplots()
    ax.scatter(_np(x), _np(y), s=12, color="tab:blue")
    (line,) = ax.plot([], [], color="tab:red")
    lo, hi = float(y.min()), float(y.max())
    pad = 0.15 * (hi - lo or 1.0)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    text = ax.set_title("")

    def draw(i):
        step, preds = snapshots[i]
        line.set_data(_np(curve_x), _np(preds))
        text.set_text(f"{title}   step {step}")
        return line, text

    anim = animation.FuncAnimation(fig, draw, frames=len(snapshots), blit=False)
    tmp = target.with_name(f".{target.name}.tmp.gif")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        anim.save(tmp, writer=animation.PillowWriter(fps=4))
        atomic_write_bytes(target, tmp.read_bytes())
    except OSError as e:
        raise OutputError(f"--animate {path}: cannot be written ({e.strerror or e})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _print_png(fig: Figure, buf: io.BytesIO, dpi: int) -> None:
    """The PNG `fig.savefig(buf, format="png", dpi=dpi)` writes, byte for byte, drawn
    once on an Agg canvas. savefig draws a constrained-layout figure twice (once to lay
    it out, once to paint it); one canvas draw does both, ~20% faster
    (tests/test_plots.py compares the bytes)."""
    import matplotlib.image
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # becomes fig.canvas
    saved_dpi = fig.dpi
    fig.dpi = dpi
    try:
        canvas.draw()
        matplotlib.image.imsave(
            buf, canvas.buffer_rgba(), format="png", origin="upper", dpi=fig.dpi
        )  # what savefig's print_png does after its draw
    finally:
        fig.dpi = saved_dpi


def _savefig_defaults() -> bool:
    """Whether the rcParams that savefig applies (and a canvas draw does not) are
    matplotlib's defaults, so that _print_png writes what savefig would."""
    from matplotlib import rcParams

    return (
        rcParams["savefig.facecolor"] == "auto"
        and rcParams["savefig.edgecolor"] == "auto"
        and not rcParams["savefig.transparent"]
        and rcParams["savefig.bbox"] in (None, "standard")
        and rcParams["savefig.orientation"] == "portrait"
    )


def plot_fit(
    x: torch.Tensor,
    y: torch.Tensor,
    curve_x: torch.Tensor,
    curve_y: torch.Tensor,
    *,
    residuals: torch.Tensor | None = None,
    xlabel: str = "x",
    ylabel: str = "y",
    title: str = "",
    band: tuple[torch.Tensor, torch.Tensor] | None = None,
    band_label: str = "band",
) -> Figure:
    """Data as points, the fitted curve as a line, `band` = (low, high) at curve_x
    shaded around it; residuals below when given."""
    fig = _figure(7, 5.5 if residuals is not None else 4)
    if residuals is not None:
        ax, rax = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    else:
        ax, rax = fig.subplots(), None
    ax.scatter(_np(x), _np(y), s=14, color="tab:blue", label="data")
    if band is not None:
        ax.fill_between(
            _np(curve_x), _np(band[0]), _np(band[1]), color="tab:red", alpha=0.2, lw=0,
            label=band_label,
        )  # fmt: skip
    ax.plot(_np(curve_x), _np(curve_y), color="tab:red", label="fit")
    ax.set_ylabel(ylabel)
    ax.legend(loc="best")
    if title:
        ax.set_title(title, fontsize=12 if len(title) <= 60 else 8)  # long formulas fit
    if rax is not None:
        rax.axhline(0, color="grey", lw=0.8)
        rax.scatter(_np(x), _np(residuals), s=10, color="tab:blue")
        rax.set_ylabel("residual")
        rax.set_xlabel(xlabel)
    else:
        ax.set_xlabel(xlabel)
    return fig


def plot_prediction_grid(
    x: torch.Tensor,
    y: torch.Tensor,
    snapshots: Sequence[tuple[int, torch.Tensor]],
    panels: int = 5,
    curve_x: torch.Tensor | None = None,
    label: str = "epoch",
) -> Figure:
    """The book's row of panels: data (blue) and predictions (red) at several steps.

    `snapshots` are (epoch, predictions) pairs; up to `panels` are chosen, spread
    over the run, always with the first and the last."""
    chosen = _spread(list(snapshots), panels)
    fig = _figure(3 * len(chosen), 3)
    axes = fig.subplots(1, len(chosen), sharey=True, squeeze=False)[0]
    cx = x if curve_x is None else curve_x
    for ax, (epoch, preds) in zip(axes, chosen, strict=True):
        ax.scatter(_np(x), _np(y), s=10, color="tab:blue")
        ax.plot(_np(cx), _np(preds), color="tab:red")
        ax.set_title(f"{label} {epoch}")
    return fig


def history_of(source: object) -> History:
    """The History of a Learner or a FitResult (their `.history`), or a History itself."""
    history = source if isinstance(source, History) else getattr(source, "history", None)
    if not isinstance(history, History):
        raise ConfigError(
            f"plot a Learner, a FitResult or a History, not a {type(source).__name__}"
        )
    return history


def plot_losses(history: History | object, log: bool | None = None, title: str = "") -> Figure:
    """train_loss (and valid_loss) against epoch; log scale when they span decades.

    `history` is a History, or a Learner or FitResult: `plot_losses(learn)` in a notebook."""
    history = history_of(history)
    fig = _figure(6, 4)
    ax = fig.subplots()
    epochs = history.column("epoch")
    spans = []
    for col, color in (("train_loss", "tab:blue"), ("valid_loss", "tab:orange")):
        if col in history.columns:
            vals = history.column(col)
            ax.plot(epochs, vals, color=color, label=col, marker="." if len(vals) < 30 else None)
            spans += [v for v in vals if math.isfinite(v) and v > 0]
    if log is None:
        log = bool(spans) and max(spans) / min(spans) > 100
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend(loc="best")
    if title:
        ax.set_title(title)
    return fig


def plot_metric(
    history: History | object, column: str = "valid_accuracy", title: str = ""
) -> Figure:
    """One metric column (e.g. valid_accuracy, or accuracy for short) against epoch, of a
    History, a Learner or a FitResult."""
    history = history_of(history)
    if column not in history.columns and f"valid_{column}" in history.columns:
        column = f"valid_{column}"
    if len(history) and column not in history.columns:
        raise ConfigError(f"no column {column!r}; the history has {', '.join(history.columns)}")
    fig = _figure(6, 4)
    ax = fig.subplots()
    if len(history):  # a run stopped in its first epoch has no point to draw
        ax.plot(history.column("epoch"), history.column(column), marker=".", color="tab:green")
    ax.set_xlabel("epoch")
    ax.set_ylabel(column)
    if title:
        ax.set_title(title)
    return fig


def _spread(items: list, k: int) -> list:
    if len(items) <= k:
        return items
    idx = sorted({round(i * (len(items) - 1) / (k - 1)) for i in range(k)})
    return [items[i] for i in idx]


def _np(t: torch.Tensor):
    return t.detach().cpu().double().numpy() if isinstance(t, torch.Tensor) else t


def plot_weight_images(
    weights: torch.Tensor, size: tuple[int, int], titles: Sequence[str], suptitle: str = ""
) -> Figure:
    """One heat map per row of `weights` (k, h*w): red where a pixel counts for the
    class, blue where it counts against, white where it does not matter. Each
    panel has its own symmetric colour scale."""
    k = len(weights)
    cols = min(k, 5)
    rows = -(-k // cols)
    fig = _figure(2.4 * cols, 2.6 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= k:
            continue
        img = weights[i].detach().cpu().double().reshape(size).numpy()
        lim = float(abs(img).max()) or 1.0
        im = ax.imshow(img, cmap="bwr", vmin=-lim, vmax=lim)
        ax.set_title(titles[i], fontsize=10)
        fig.colorbar(im, ax=ax, shrink=0.75)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def plot_confusion(confusion: torch.Tensor, labels: Sequence[str]) -> Figure:
    """Counts: rows are true classes, columns predicted ones."""
    k = len(labels)
    fig = _figure(1.2 + 0.5 * k, 1.0 + 0.5 * k)
    ax = fig.subplots()
    cm = confusion.cpu().numpy()
    ax.imshow(cm, cmap="Blues")
    for i in range(k):
        for j in range(k):
            color = "white" if cm[i, j] > cm.max() / 2 else "black"
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", color=color, fontsize=8)
    ax.set_xticks(range(k), labels)
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix (validation)")
    return fig


def plot_image_grid(images: torch.Tensor, titles: Sequence[str], suptitle: str = "") -> Figure:
    """Greyscale uint8 images (n, h, w) in a grid with a title each; the figure is wide
    enough for `suptitle` whatever n is (one image is a narrow column)."""
    n = len(images)
    cols = min(max(n, 1), 6)
    rows = max(-(-n // cols), 1)
    # ~0.11 in per character of a 12 pt title, plus margins
    fig = _figure(max(1.9 * cols, 0.11 * len(suptitle) + 0.5), 2.1 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i].cpu().numpy(), cmap="gray_r", vmin=0, vmax=255)
            ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def plot_schedule(lrs: list[float], momenta: list[float] = (), title: str = "schedule"):
    """The learning rate (and momentum, on a second axis) at every step."""
    fig = _figure(6, 3.2)
    ax = fig.add_subplot()
    ax.plot(range(1, len(lrs) + 1), lrs, color="tab:blue")
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate", color="tab:blue")
    if len(momenta) == len(lrs) and len(set(momenta)) > 1:
        ax2 = ax.twinx()
        ax2.plot(range(1, len(momenta) + 1), momenta, color="tab:orange")
        ax2.set_ylabel("momentum (SGD) / beta1 (Adam)", color="tab:orange")
    ax.set_title(title)
    return fig


def schedule_plots(learner, run) -> list:
    """plots/schedule.png in the run directory when a Schedule changed the rate."""
    for cb in learner.callbacks:
        if isinstance(cb, Schedule) and cb.lrs:
            fig = plot_schedule(cb.lrs, cb.momenta, title=f"{cb.kind} schedule")
            return [save_figure(fig, run.plot("schedule.png"))]
    return []


def plot_lr_find(result, title: str = "learning-rate finder") -> Figure:
    """Loss against learning rate (log axis), the suggestions marked."""
    fig = _figure(6, 3.6)
    ax = fig.add_subplot()
    ax.plot(result.lrs, result.losses, color="0.75", lw=0.8, label="loss")
    ax.plot(result.lrs, result.smoothed, color="tab:blue", label="smoothed")
    ax.set_ylabel(result.monitor)
    ax.set_xscale("log")
    finite = [v for v in result.smoothed if math.isfinite(v)]
    if finite:
        lo, hi = min(finite), max(finite[: max(1, len(finite) // 4)] + [min(finite)])
        ax.set_ylim(lo - 0.1 * (hi - lo + 1e-12), hi + 0.5 * (hi - lo + 1e-12))
    markers = {"minimum/3": "o", "minimum/10": "s", "steepest": "^", "valley": "v"}
    for name, lr in result.suggestions.items():
        i = min(range(len(result.lrs)), key=lambda j: abs(math.log(result.lrs[j] / lr)))
        chosen = " (chosen)" if name == result.choice else ""
        ax.plot([lr], [result.smoothed[i]], markers.get(name, "o"), ms=8,
                label=f"{name} {lr:.2g}{chosen}")  # fmt: skip
    ax.set_xlabel("learning rate (log scale)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def plot_sweep(result) -> Figure:
    """The K loss curves (valid_loss, or train_loss) per epoch on a log axis; the best
    rate drawn thick, diverged ones dashed with an x at their last finite value."""
    import matplotlib as mpl

    fig = _figure(7, 4)
    ax = fig.add_subplot()
    cmap = mpl.colormaps["viridis"]
    best = result.best_index
    for i, (lr, h) in enumerate(zip(result.lrs, result.histories, strict=True)):
        xs = [r["epoch"] for r in h]
        ys = [r[result.monitor] if math.isfinite(r[result.monitor]) else math.nan for r in h]
        color = cmap(i / max(len(result.lrs) - 1, 1))
        if result.diverged[i] is not None:
            ax.plot(xs, ys, "--", color=color, alpha=0.6, label=f"{lr:.2g} (diverged)")
            finite = [(x, y) for x, y in zip(xs, ys, strict=True) if math.isfinite(y) and y > 0]
            if finite:
                ax.plot(*finite[-1], "x", color=color, ms=9, mew=2)
        else:
            ax.plot(xs, ys, "-o", ms=3, color=color, lw=2.5 if i == best else 1.2,
                    label=f"{lr:.2g}" + (" (best)" if i == best else ""))  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(result.monitor)
    ax.set_title(f"{len(result.lrs)} learning rates trained at once")
    ax.legend(fontsize=7, ncol=2, title="lr")
    return fig


def plot_groups(panels: Sequence[dict], ylabel: str = "y", title: str = "") -> Figure:
    """A grid of small fits (`descent fit --by`): each panel a dict with title, x, y
    (data) and optionally curve_x, curve_y (the fitted curve; without curve_x the curve
    is drawn at the data's x). x of several columns is drawn against the row number."""
    n = len(panels)
    cols = min(max(n, 1), 4)
    rows = max(-(-n // cols), 1)
    fig = _figure(3.2 * cols, 2.6 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        p = panels[i]
        x = p["x"] if p["x"].dim() == 1 else torch.arange(len(p["y"]))
        ax.scatter(_np(x), _np(p["y"]), s=8, color="tab:blue")
        if "curve_y" in p:
            cx = p.get("curve_x", x)
            ax.plot(_np(cx), _np(p["curve_y"]), color="tab:red", lw=1.2)
        ax.set_title(p["title"], fontsize=8)
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(f"{ylabel} = {title}", fontsize=10)
    return fig
