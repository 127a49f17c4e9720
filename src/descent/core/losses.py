"""[3 loss] Pure functions (preds, targets) -> scalar tensor.

Shapes are checked, never broadcast by accident: a (n, 1) prediction against a
(n,) target would silently average an (n, n) matrix of differences.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from descent.errors import ConfigError, DataError
from descent.options import LOSSES

LossFunc = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
GradFunc = Callable[[], torch.Tensor]


def _same_shape(preds: torch.Tensor, targets: torch.Tensor, name: str) -> None:
    if preds.shape != targets.shape:
        raise DataError(
            f"{name}: predictions {tuple(preds.shape)} and targets {tuple(targets.shape)} "
            "differ in shape; reshape one deliberately"
        )


def mse(preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean squared error: mean((preds - targets)**2)."""
    _same_shape(preds, targets, "mse")
    return F.mse_loss(preds, targets)


def mae(preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean absolute error: mean(|preds - targets|)."""
    _same_shape(preds, targets, "mae")
    return F.l1_loss(preds, targets)


def mnist_loss(preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The book's loss for one output: mean(where(t == 1, 1 - sigmoid(p), sigmoid(p))).

    preds (n,) or (n, 1) raw scores; targets (n,) of 0/1."""
    preds = preds.reshape(-1).sigmoid()  # (n,)
    return torch.where(targets.reshape(-1) == 1, 1 - preds, preds).mean()


def bce(preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy on raw scores: preds (n,) or (n, 1), targets (n,) of 0/1."""
    return F.binary_cross_entropy_with_logits(
        preds.reshape(-1), targets.reshape(-1).to(preds.dtype)
    )


def cross_entropy(preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy: preds (n, k) raw scores, targets (n,) class indices."""
    return F.cross_entropy(preds, targets)


# by name: the names are options.LOSSES (tests/test_layers.py checks they agree)
LOSS_FUNCTIONS: dict[str, LossFunc] = {
    "mse": mse,
    "mae": mae,
    "mnist": mnist_loss,
    "bce": bce,
    "cross_entropy": cross_entropy,
}


def get_loss(name: str) -> LossFunc:
    """A loss by name; ConfigError listing the names otherwise."""
    try:
        return LOSS_FUNCTIONS[name.lower().replace("-", "_")]
    except KeyError:
        raise ConfigError(f"unknown loss {name!r}: choose one of {', '.join(LOSSES)}") from None


# --- K copies at once (tuning/sweep.py) ---------------------------------------------------------
# The built-in losses of K stacked predictions (K, n, ...) against one target batch -> (K,):
# the same per-copy means, computed for all copies in one call.


def _stacked_mse(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return (p - t).pow(2).reshape(len(p), -1).mean(1)


def _stacked_mae(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return (p - t).abs().reshape(len(p), -1).mean(1)


def _stacked_mnist(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    s = p.reshape(len(p), -1).sigmoid()
    return torch.where(t.reshape(1, -1) == 1, 1 - s, s).mean(1)


def _stacked_bce(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    p = p.reshape(len(p), -1)
    t = t.reshape(1, -1).to(p.dtype).expand_as(p)
    return F.binary_cross_entropy_with_logits(p, t, reduction="none").mean(1)


def _stacked_cross_entropy(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    kk, n, k = p.shape  # (K, n, k) scores, (n,) classes
    return F.cross_entropy(p.reshape(kk * n, k), t.repeat(kk), reduction="none").view(kk, n).mean(1)


STACKED_LOSSES = {
    mse: _stacked_mse,
    mae: _stacked_mae,
    mnist_loss: _stacked_mnist,
    bce: _stacked_bce,
    cross_entropy: _stacked_cross_entropy,
}


# With their gradients, for models that take K copies' step 4 by hand (PixelClassifier's
# backward_stacked): (K, n, ...) scores -> the (K,) losses and dL_i/dscores_i, the gradient
# of the summed losses (K, n, ...). tests/test_sweep.py checks them against autograd.


def _stacked_bce_grad(p: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    s = p.reshape(len(p), -1)  # (K, n)
    g = s.sigmoid().sub_(t.reshape(1, -1).to(s.dtype)).div_(s.shape[1])
    return _stacked_bce(p, t), g.view_as(p)


def _stacked_mnist_grad(p: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    s = p.reshape(len(p), -1).sigmoid()
    pos = t.reshape(1, -1) == 1
    dp = s * (1 - s)
    g = torch.where(pos, -dp, dp).div_(s.shape[1])
    return torch.where(pos, 1 - s, s).mean(1), g.view_as(p)


def _stacked_cross_entropy_grad(
    p: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    kk, n, k = p.shape
    logp = p.log_softmax(2)
    index = t.reshape(1, n, 1).expand(kk, n, 1)
    losses = -logp.gather(2, index).view(kk, n).mean(1)
    g = logp.exp_()  # softmax, then minus one-hot
    g.scatter_add_(2, index, g.new_full((kk, n, 1), -1.0))
    return losses, g.div_(n)


STACKED_GRADS = {
    bce: _stacked_bce_grad,
    mnist_loss: _stacked_mnist_grad,
    cross_entropy: _stacked_cross_entropy_grad,
}


def stacked_accepts(loss_func, preds: torch.Tensor, yb: torch.Tensor) -> bool:
    """Whether the built-in loss takes one copy's predictions preds[i] for targets yb
    (otherwise the vmapped call runs, and raises the loss's own shape error)."""
    shape = tuple(preds.shape[1:])
    if loss_func in (mse, mae):
        return shape == tuple(yb.shape)
    if yb.dim() != 1 or not shape or shape[0] != len(yb):
        return False
    if loss_func in (bce, mnist_loss):
        return shape[1:] in ((), (1,))
    return len(shape) == 2  # cross_entropy


# --- [4 gradient] by hand, for descent's own classifier heads (core/fused.py) ---------------------
# The classifier losses on class-major scores s (k, n), the layout PixelClassifier and MLP compute
# (their forward_t): each returns the loss, equal to the function above on s.t(), and a function
# giving dL/ds (k, n). Step 4 calls it, not step 3, so validation never computes a gradient. Each
# is called once per loss (cross-entropy's turns its log-probabilities into the gradient in place).
# tests/test_fused.py checks them against autograd.


def cross_entropy_t(s: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, GradFunc]:
    """L = mean_i -log softmax(s[:, i])[y_i];  dL/ds = (softmax(s) - onehot(y)) / n."""
    logp = s.log_softmax(0)  # (k, n)

    def grad() -> torch.Tensor:
        g = logp.exp_()  # softmax(s)
        n = g.shape[1]
        g.scatter_add_(0, targets.reshape(1, n), g.new_full((1, n), -1.0))  # - onehot(y)
        return g.mul_(1 / n)

    return F.nll_loss(logp.t(), targets), grad


def bce_t(s: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, GradFunc]:
    """One output, s (1, n): L = mean(softplus(s) - t * s);  dL/ds = (sigmoid(s) - t) / n."""
    t = targets.reshape(1, -1).to(s.dtype)
    return F.binary_cross_entropy_with_logits(s, t), lambda: s.sigmoid().sub_(t).div_(t.shape[1])


def mnist_loss_t(s: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, GradFunc]:
    """One output, s (1, n), p = sigmoid(s): L = mean(where(t == 1, 1 - p, p));
    dL/ds = where(t == 1, -1, 1) * p * (1 - p) / n."""
    p = s.sigmoid()
    pos = targets.reshape(1, -1) == 1

    def grad() -> torch.Tensor:
        dp = p * (1 - p)  # dp/ds
        return torch.where(pos, -dp, dp).div_(p.shape[1])

    return torch.where(pos, 1 - p, p).mean(), grad


# loss function -> its class-major closed form, and the outputs it takes (None: any number)
FUSED_LOSSES: dict[LossFunc, tuple[Callable, int | None]] = {
    cross_entropy: (cross_entropy_t, None),
    bce: (bce_t, 1),
    mnist_loss: (mnist_loss_t, 1),
}
