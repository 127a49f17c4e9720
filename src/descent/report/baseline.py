"""Figures of the pixel-similarity baseline (models/mean.py): the mean image of each
class, and the validation images nearest to the wrong class's mean."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from descent.errors import ConfigError
from descent.models.mean import MeanImageClassifier
from descent.report.plots import plot_image_grid

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def plot_mean_images(
    model: MeanImageClassifier,
    labels: Sequence[str] | None = None,
    size: tuple[int, int] | None = None,
) -> Figure:
    """The book's "ideal 3" and "ideal 7": each class's mean image, in grey (dark = ink),
    titled with its label and how many training images it averages. `size` (h, w)
    defaults to a square of the model's pixels."""
    k = model.n_classes
    labels = list(labels) if labels is not None else [str(i) for i in range(k)]
    if len(labels) != k:
        raise ConfigError(f"{len(labels)} labels for {k} mean images")
    if size is None:
        side = math.isqrt(model.n_pixels)
        if side * side != model.n_pixels:
            raise ConfigError(f"give size=(h, w): {model.n_pixels} pixels are not a square")
        size = (side, side)
    means = model.class_weights().reshape(k, *size)  # (k, h, w) in [0, 1]
    images = (means * 255).round().clamp(0, 255).to(torch.uint8)
    titles = [f"mean of {lab} ({int(n):,})" for lab, n in zip(labels, model.counts, strict=True)]
    return plot_image_grid(images, titles, f"{k} mean images: the pixel-similarity baseline")


def plot_nearest_mistakes(
    scores: torch.Tensor,
    targets: torch.Tensor,
    images: torch.Tensor,
    labels: Sequence[str],
    distance: str,
    n: int = 12,
) -> Figure:
    """The validation images that lie furthest inside another class's mean: scores are
    minus the distances (n, k), as MeanImageClassifier returns them. Each title gives the
    distance to the mean that won and to the true class's mean."""
    d = -scores  # (m, k) distances
    pred = d.argmin(1)  # (m,)
    wrong = (pred != targets).nonzero().reshape(-1)
    rows = torch.arange(len(targets))
    margin = d[rows, targets] - d[rows, pred]  # how much nearer the winning mean is, >= 0
    order = wrong[margin[wrong].argsort(descending=True)][:n]
    titles = [
        f"true {labels[t]}, nearest {labels[p]}\n"
        f"{distance}: {labels[p]} {float(d[i, p]):.3f}, {labels[t]} {float(d[i, t]):.3f}"
        for i, t, p in ((i, int(targets[i]), int(pred[i])) for i in order)
    ]
    return plot_image_grid(images[order], titles, "validation images nearest a wrong mean")
