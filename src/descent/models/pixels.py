"""The per-pixel linear classifier: one weight per pixel per class.

    scores = x @ weights.T + bias    (n, 784) @ (784, k) + (k,) -> (n, k)

`weights` is stored (k, 784), a row of 784 pixel weights per class (nn.Linear's
layout), and the scores are computed as (weights @ x.T).T: both products of a
step then run in the memory order BLAS is fastest at (about 2x faster than x @ W
with W (784, k) on CPU; bench/throughput.py times every layout).

`x` arrives as uint8 images (n, h, w) and is scaled to [0, 1] inside the matrix
product (addmm's alpha), so the data never exist as float32 copies. With one
output (k = 1) the score is for the second label (the book's sigmoid loss or
BCE); with k outputs, for each class (cross-entropy).
"""

from __future__ import annotations

import torch
from torch import nn


class PixelClassifier(nn.Module):
    """(n, h, w) uint8 -> (n, k) scores with one weight per pixel per output."""

    kind = "pixels"

    def __init__(
        self, n_pixels: int = 784, n_outputs: int = 1, init_std: float = 0.0, seed: int = 0
    ) -> None:
        super().__init__()
        self.n_pixels, self.n_outputs = n_pixels, n_outputs
        self.init_std, self.seed = init_std, seed
        gen = torch.Generator().manual_seed(seed)
        # init_std 0 starts from all-zero weights (the loss is convex: any start works);
        # the book's init_params uses randn * 1.0.
        w = torch.randn(n_pixels, n_outputs, generator=gen).t().contiguous()  # (k, n_pixels)
        self.weights = nn.Parameter(w * init_std)
        self.bias = nn.Parameter(torch.randn(n_outputs, generator=gen) * init_std)
        self.scale = 1.0 / 255.0  # uint8 pixels -> [0, 1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores_t, _ = self.forward_t(self.pixels(x))
        return scores_t.t()  # (n, k)

    def pixels(self, x: torch.Tensor) -> torch.Tensor:
        """(n, h, w) images -> (n, 784) floats, still 0..255 (the scale is in the product)."""
        return x.flatten(1).to(self.weights.dtype)

    def forward_t(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, 784) pixels -> the (k, n) scores, and what backward_t needs (x).

        (k, 784) @ (784, n) -> (k, n): BLAS is ~2x faster at this orientation for
        small k, and the weight gradient g @ x then comes out in the weights' layout."""
        return torch.addmm(self.bias[:, None], self.weights, x.t(), alpha=self.scale), x

    def backward_t(self, x: torch.Tensor, g: torch.Tensor) -> None:
        """[4 gradient] by hand, for the fused path (core/fused.py): from g = dL/dscores
        (k, n) and the pixels x (n, 784) kept by forward_t, into each parameter's .grad:

            dL/dW = scale * g @ x      (k, n) @ (n, 784) -> (k, 784)
            dL/db = g.sum(1)           (k,)

        tests/test_fused.py checks it against autograd."""
        gw = torch.addmm(self.weights, g, x, beta=0, alpha=self.scale)  # beta 0: W unread
        accumulate_grad(self.weights, gw)
        accumulate_grad(self.bias, g.sum(1))

    def forward_stacked(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """K copies at once (lr_sweep): weights (K, k, 784), bias (K, k) -> (K, n, k).
        One (K*k, 784) @ (784, n) product, so K copies cost about one."""
        w, b = params["weights"], params["bias"]
        kk, k = w.shape[0], w.shape[1]
        x = x.flatten(1).to(w.dtype)
        out = torch.addmm(b.reshape(kk * k, 1), w.reshape(kk * k, -1), x.t(), alpha=self.scale)
        return out.view(kk, k, -1).transpose(1, 2)

    def backward_stacked(self, x: torch.Tensor, g: torch.Tensor) -> dict[str, torch.Tensor]:
        """[4 gradient] by hand for K copies (tuning/sweep.py): from g = dL_i/dscores_i
        (K, n, k) and the float pixels x (n, 784), each copy's gradients, stacked:
        weights (K, k, 784) = scale * g_i.T @ x in one (K*k, n) @ (n, 784) product,
        bias (K, k) = g_i summed over the batch."""
        kk, n, k = g.shape
        gw = torch.mm(g.transpose(1, 2).reshape(kk * k, n), x).mul_(self.scale)
        return {"weights": gw.view(kk, k, -1), "bias": g.sum(1)}

    def config(self) -> dict:
        """Constructor arguments, for model.json."""
        return {
            "n_pixels": self.n_pixels,
            "n_outputs": self.n_outputs,
            "init_std": self.init_std,
            "seed": self.seed,
        }

    def class_weights(self) -> torch.Tensor:
        """(k, n_pixels): the weights of each output, ready to draw as images."""
        return self.weights.detach()

    def extra_repr(self) -> str:
        n = sum(p.numel() for p in self.parameters())
        return f"{self.n_pixels} pixels -> {self.n_outputs} outputs, {n:,} parameters"


def accumulate_grad(p: torch.Tensor, g: torch.Tensor) -> None:
    """p.grad += g, as autograd accumulates (p.grad = g when there is none yet)."""
    if p.grad is None:
        p.grad = g
    else:
        p.grad.add_(g)
