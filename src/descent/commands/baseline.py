"""The book's pixel-similarity baseline in `descent train` (fastbook ch. 4, before SGD):
one mean image per class; an image gets the class whose mean is nearest.

- `--model mean` steps nothing. The model has no parameters, so there is no loss,
  gradient, learning rate or epoch: one pass over the training images averages each
  class (models/mean.py). The run folder holds the model, plots/means.png, the confusion
  matrix and the images nearest a wrong mean; `descent predict` reports the nearest
  class and the distances (a softmax of minus distances is no calibrated probability).
- Linear and MLP runs print the baseline's accuracy beside their own, fitted to the same
  training images and scored on the same validation images, preprocessed as the model's:
  the difference is what learning the weights bought. It costs one pass over the data.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from rich.console import Console

from descent.commands.config import TrainConfig
from descent.commands.runs import Finishing, start_run, write_summary
from descent.commands.train_result import TrainResult
from descent.core.events import StopReason
from descent.core.history import History
from descent.core.metrics import confusion_matrix, per_class_accuracy, scores_of
from descent.core.result import FitResult
from descent.data.images import ImageData
from descent.data.preprocess import Preprocess
from descent.io.models import save_model
from descent.models.mean import MeanImageClassifier
from descent.report.baseline import plot_mean_images, plot_nearest_mistakes
from descent.report.html import write_run_report
from descent.report.plots import plot_confusion, save_figure

DISTANCE_WORDS = {
    "l1": "mean absolute pixel difference",
    "l2": "root mean squared pixel difference",
}


def fit_means(train_x: torch.Tensor, train_y: torch.Tensor, n_classes: int, distance: str):
    """MeanImageClassifier fitted to uint8 images (n, h, w): one pass, no float copy."""
    n_pixels = train_x[0].numel() if len(train_x) else 1
    return MeanImageClassifier(n_pixels, n_classes, distance).fit(train_x, train_y)


def baseline_accuracy(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    valid_x: torch.Tensor,
    valid_y: torch.Tensor,
    n_classes: int,
    distance: str = "l1",
) -> float | None:
    """Validation accuracy of the nearest mean image (None without validation images)."""
    if len(valid_x) == 0:
        return None
    model = fit_means(train_x, train_y, n_classes, distance)
    with torch.no_grad():
        predicted = scores_of(model, valid_x, batch=1024).argmax(1)  # (m,): 3 MB a batch
    return float((predicted == valid_y).sum()) / len(valid_y)


def baseline_line(accuracy: float | None, baseline: float | None, distance: str) -> str:
    """The summary's line: the baseline beside the learned model's accuracy."""
    if baseline is None or accuracy is None:
        return ""
    gain = 100 * (accuracy - baseline)
    return (
        f"  baseline: nearest mean image ({distance}) {baseline:.4f} on the same images; "
        f"learning the weights {'bought' if gain >= 0 else 'lost'} {abs(gain):.2f} points"
    )


def train_mean(
    cfg: TrainConfig,
    data: ImageData,
    pre: Preprocess,
    valid_x: torch.Tensor,
    header: str,
    console: Console,
    *,
    overwrite: bool = False,
) -> TrainResult:
    """`descent train --model mean`: average, evaluate, write the run folder, summarise.
    `data.train_x` and `valid_x` are preprocessed as `pre` says; `header` is the run's
    first line. The run folder is claimed as every train run's (commands/runs.py)."""
    say = (lambda *a, **k: None) if cfg.quiet else console.print
    t0 = time.perf_counter()
    run, cfg = start_run(
        cfg, "train", cfg.source, overwrite=overwrite,
        warn=lambda m: console.print(f"[yellow]warning:[/] {m}"),
    )  # fmt: skip
    with run:
        return _mean_run(cfg, data, pre, valid_x, header, console, say, t0, run)


def _mean_run(cfg, data, pre, valid_x, header, console, say, t0, run) -> TrainResult:
    say(header)
    if cfg.deskew_found:
        say(f"deskew auto: {cfg.deskew_found}")
    labels, k = data.labels, len(data.labels)
    model = fit_means(data.train_x, data.train_y, k, cfg.distance)
    say(f"model {model!r}")
    say(
        "nothing to step: the mean images are averages, not parameters, so there is no loss, "
        "gradient, learning rate or epoch; one pass over the training images made them, and "
        f"an image gets the class of the nearest mean ({cfg.distance} distance: "
        f"{DISTANCE_WORDS[cfg.distance]})"
    )
    with torch.no_grad():
        scores = scores_of(model, valid_x)  # (m, k): minus the distances
    if len(valid_x):
        cm = confusion_matrix(scores, data.valid_y, k)
        accuracy = float(cm.diag().sum()) / len(valid_x)
        per_class = dict(zip(labels, per_class_accuracy(cm).tolist(), strict=True))
    else:
        cm, accuracy, per_class = torch.zeros(k, k, dtype=torch.long), None, {}
    for name in ("model.safetensors", "model.json"):
        run.file(name)  # recorded as the run's before they are written
    save_model(model, run.path, labels=labels, preprocessing=pre.to_dict(), loss=None)
    seconds = time.perf_counter() - t0
    message = "nothing to step: the mean images are averages of the training images"
    result = FitResult(StopReason.NO_PARAMETERS, message, 0, 0, seconds, History())
    summary = {
        "source": data.source,
        "split": data.split,
        "labels": labels,
        "model": model.kind,
        "distance": cfg.distance,
        "scores": f"minus the {cfg.distance} distance ({DISTANCE_WORDS[cfg.distance]}) "
        "to each class's mean image",
        "stopped": result.stopped,
        "message": message,
        "epochs": 0,
        "valid_accuracy": accuracy,
        "per_class_accuracy": per_class,
        "confusion": cm.tolist(),
        "seconds": seconds,
        "run_dir": str(run),
        "plots": [],
    }
    write_summary(run, summary, cfg.json)  # a complete run before any plot is drawn
    acc_text = "n/a (no validation set)" if accuracy is None else f"{accuracy:.4f}"
    console.print(
        f"\n[bold]Summary[/]: valid_accuracy {acc_text} ({len(valid_x)} images), the class of "
        f"the nearest mean image by {cfg.distance} distance; nothing trained, {seconds:.1f} s"
    )
    if per_class:
        console.print(
            "  per class: " + ", ".join(f"{lab} {acc:.3f}" for lab, acc in per_class.items())
        )
    console.print(f"  run: {run}/ {run.listing()}")

    def drawings() -> list[Path]:
        figs = {"means.png": plot_mean_images(model, labels, data.size)}
        if len(valid_x):
            figs["confusion.png"] = plot_confusion(cm, labels)
            figs["mistakes.png"] = plot_nearest_mistakes(
                scores, data.valid_y, valid_x, labels, cfg.distance
            )
        return [save_figure(fig, run.plot(name)) for name, fig in figs.items()]

    with Finishing() as finishing:
        plots = finishing.draw(drawings)
    if plots:
        summary["plots"] = [str(p) for p in plots]
        write_summary(run, summary, cfg.json)
    write_run_report(run.path, run.file("report.html"), run.own_plots())
    if made := run.plot_listing(plots):
        console.print(f"  plots: {run.plots}/ {made}")
    console.print(
        f"  predict: descent predict {run} IMAGE.png ... (the nearest class and the distances)"
    )
    if finishing.signal is not None:
        console.print(finishing.note())
    return TrainResult(
        result, accuracy, per_class, cm.tolist(), labels, run, model, summary, finishing.signal
    )
