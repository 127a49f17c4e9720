"""A small neural net: 784 -> hidden -> k with a ReLU between (the book's
`simple_net` is hidden = 30 with one output)."""

from __future__ import annotations

import math

import torch
from torch import nn

from descent.models.pixels import accumulate_grad


class MLP(nn.Module):
    """(n, h, w) uint8 -> (n, k): Linear(784, hidden), ReLU, Linear(hidden, k)."""

    kind = "mlp"

    def __init__(
        self, n_pixels: int = 784, hidden: int = 100, n_outputs: int = 10, seed: int = 0
    ) -> None:
        super().__init__()
        self.n_pixels, self.hidden, self.n_outputs, self.seed = n_pixels, hidden, n_outputs, seed
        self.layer1 = nn.Linear(n_pixels, hidden)
        self.layer2 = nn.Linear(hidden, n_outputs)
        gen = torch.Generator().manual_seed(seed)
        for layer in (self.layer1, self.layer2):  # torch's default init, from our generator
            bound = 1 / math.sqrt(layer.in_features)
            with torch.no_grad():
                layer.weight.uniform_(-bound, bound, generator=gen)
                layer.bias.uniform_(-bound, bound, generator=gen)
        self.scale = 1.0 / 255.0  # uint8 pixels -> [0, 1], folded into the first product

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores_t, _ = self.forward_t(self.pixels(x))
        return scores_t.t()  # (n, k)

    def pixels(self, x: torch.Tensor) -> torch.Tensor:
        """(n, h, w) images -> (n, 784) floats, still 0..255 (the scale is in the product)."""
        return x.flatten(1).to(self.layer1.weight.dtype)

    def forward_t(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """(n, 784) pixels -> the (k, n) scores, and what backward_t needs (x, h).

        Units along the rows, samples along the columns (as PixelClassifier): each
        product is weights @ activations, the fastest layout here for both of them."""
        w1, b1, w2, b2 = self.layer1.weight, self.layer1.bias, self.layer2.weight, self.layer2.bias
        h = torch.addmm(b1[:, None], w1, x.t(), alpha=self.scale).relu_()  # (hidden, n)
        return torch.addmm(b2[:, None], w2, h), (x, h)  # (k, hidden) @ (hidden, n) -> (k, n)

    def backward_t(self, saved: tuple[torch.Tensor, torch.Tensor], g: torch.Tensor) -> None:
        """[4 gradient] by hand, for the fused path (core/fused.py): from g = dL/dscores
        (k, n) back through both layers into each parameter's .grad (h = relu(z1)):

            dL/dW2 = g @ h.T                 (k, n) @ (n, hidden) -> (k, hidden)
            dL/db2 = g.sum(1)
            dL/dz1 = (W2.T @ g) * (h > 0)    (hidden, n): relu passes where it was open
            dL/dW1 = scale * dL/dz1 @ x      (hidden, n) @ (n, 784) -> (hidden, 784)
            dL/db1 = dL/dz1.sum(1)

        tests/test_fused.py checks it against autograd."""
        x, h = saved
        w1, b1, w2, b2 = self.layer1.weight, self.layer1.bias, self.layer2.weight, self.layer2.bias
        accumulate_grad(w2, g @ h.t())
        accumulate_grad(b2, g.sum(1))
        # relu's derivative as autograd takes it (ReluBackward): one pass, no mask tensor
        gz = torch.ops.aten.threshold_backward(w2.t() @ g, h, 0)  # (hidden, n)
        accumulate_grad(w1, torch.addmm(w1, gz, x, beta=0, alpha=self.scale))  # beta 0: unread
        accumulate_grad(b1, gz.sum(1))

    def forward_stacked(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """K copies at once (lr_sweep): parameters stacked (K, ...) -> (K, n, k)."""
        w1, b1 = params["layer1.weight"], params["layer1.bias"]  # (K, h, 784), (K, h)
        w2, b2 = params["layer2.weight"], params["layer2.bias"]  # (K, k, h), (K, k)
        kk, h = w1.shape[0], w1.shape[1]
        x = x.flatten(1).to(w1.dtype)
        hidden = torch.addmm(b1.reshape(kk * h, 1), w1.reshape(kk * h, -1), x.t(), alpha=self.scale)
        hidden = torch.relu(hidden).view(kk, h, -1)  # (K, h, n)
        return torch.baddbmm(b2[:, :, None], w2, hidden).transpose(1, 2)  # (K, n, k)

    def config(self) -> dict:
        return {
            "n_pixels": self.n_pixels,
            "hidden": self.hidden,
            "n_outputs": self.n_outputs,
            "seed": self.seed,
        }

    def class_weights(self) -> torch.Tensor:
        """(hidden, n_pixels): what each hidden unit looks at (there are no per-class
        pixel weights in a net with a hidden layer)."""
        return self.layer1.weight.detach()

    def extra_repr(self) -> str:
        n = sum(p.numel() for p in self.parameters())
        return f"{self.n_pixels} -> {self.hidden} -> {self.n_outputs}, {n:,} parameters"
