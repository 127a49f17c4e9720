"""The pixel-similarity baseline (the book's "ideal 3"): one mean image per class, and
an image belongs to the class whose mean it is closest to. Nothing is learned by
gradient descent: `fit` averages the training images of each class.

    scores = -distance(x, means)       (n, 784) against (k, 784) -> (n, k)

distance "l1" is the book's `mnist_distance`, the mean absolute difference of the
pixels (in [0, 1]); "l2" is the root of the mean squared difference (the book's
`F.mse_loss(a, b).sqrt()`). The scores are minus the distances, so the argmax is the
nearest mean and descent's accuracy, confusion matrix and predictions work unchanged;
softmax of them is not a calibrated probability.
"""

from __future__ import annotations

import torch
from torch import nn

from descent.errors import ConfigError, DataError
from descent.options import DISTANCES


class MeanImageClassifier(nn.Module):
    """(n, h, w) uint8 -> (n, k) minus the distance to each class's mean image.

    The means are buffers (k, n_pixels) in [0, 1], not parameters: there is nothing to
    step. `fit(images, targets)` sets them and returns the model."""

    kind = "mean"

    def __init__(self, n_pixels: int = 784, n_classes: int = 2, distance: str = "l1") -> None:
        super().__init__()
        if distance not in DISTANCES:
            raise ConfigError(f"distance must be {' or '.join(DISTANCES)}, got {distance!r}")
        if n_classes < 2 or n_pixels < 1:
            raise ConfigError(f"need n_classes >= 2 and n_pixels >= 1, got {n_classes}, {n_pixels}")
        self.n_pixels, self.n_classes, self.distance = n_pixels, n_classes, distance
        self.register_buffer("means", torch.zeros(n_classes, n_pixels))  # (k, n_pixels)
        self.register_buffer("counts", torch.zeros(n_classes, dtype=torch.int64))  # (k,)
        self.scale = 1.0 / 255.0  # uint8 pixels -> [0, 1]

    @torch.no_grad()
    def fit(self, images: torch.Tensor, targets: torch.Tensor, chunk: int = 1024):
        """Average the images of each class: images (n, h, w) uint8, targets (n,) in
        0..k-1. Summed in chunks, so no float copy of the data set exists."""
        targets = targets.reshape(-1).long()
        if len(images) != len(targets):
            raise DataError(f"{len(images)} images but {len(targets)} targets")
        sums = torch.zeros(self.n_classes, self.n_pixels, dtype=torch.float64)
        for i in range(0, len(images), chunk):
            x = images[i : i + chunk].reshape(-1, self.n_pixels).to(torch.float64)  # (c, p)
            sums.index_add_(0, targets[i : i + chunk], x)
        counts = torch.bincount(targets, minlength=self.n_classes)  # (k,)
        if (counts == 0).any():
            empty = (counts == 0).nonzero()[0].item()
            raise DataError(f"class {empty} has no training images; every class needs one")
        self.means.copy_(sums * self.scale / counts[:, None])
        self.counts.copy_(counts)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1).to(self.means.dtype) * self.scale  # (n, h, w) -> (n, p)
        if self.distance == "l1":  # sum |x - m| / p: the mean absolute difference
            d = torch.cdist(x, self.means, p=1) / self.n_pixels  # (n, k)
        else:  # sqrt(sum (x - m)**2 / p): the root mean squared difference
            d = torch.cdist(x, self.means, compute_mode="donot_use_mm_for_euclid_dist")
            d = d / self.n_pixels**0.5
        return -d  # (n, k): the nearest mean scores highest

    def config(self) -> dict:
        """Constructor arguments, for model.json."""
        return {"n_pixels": self.n_pixels, "n_classes": self.n_classes, "distance": self.distance}

    def class_weights(self) -> torch.Tensor:
        """(k, n_pixels): the mean images, in [0, 1], ready to draw."""
        return self.means.detach()

    def extra_repr(self) -> str:
        fitted = f"mean of {int(self.counts.sum()):,} images" if self.counts.any() else "not fitted"
        return (
            f"{self.n_classes} mean images of {self.n_pixels} pixels ({fitted}), "
            f"{self.distance} distance, no parameters"
        )
