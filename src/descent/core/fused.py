"""[4 gradient] Which gradient the loop uses: autograd, or a fused closed form.

Steps 2-4 of `Learner.one_batch` go through a gradient object:

    preds = gradient.predict(xb)          # [2]
    loss  = gradient.loss(preds, yb)      # [3]
    gradient.backward(loss)               # [4]

`Autograd` is the generic path, the book's: `model(xb)`, the loss function,
`loss.backward()`. Every model and loss can take it, and `fused=False` (`descent train
--autograd`) forces it.

`FusedGradient` is the same three steps for descent's own classifier heads
(PixelClassifier and MLP, exactly those classes) with cross-entropy, BCE or the book's
mnist loss, the derivative written beside each forward, as micrograd does: predict runs
the model's `forward_t` without recording a graph and keeps what the backward needs
(the float pixels, the hidden activations), loss computes the loss from the
class-major scores (core/losses.py, `cross_entropy_t` ...), and backward takes the
loss's closed-form dL/dscores and the model's `backward_t` writes dL/dparameter into
each `p.grad`. Step 5 is untouched: torch.optim reads `p.grad` as after autograd.
It saves the graph's bookkeeping and a few small operations a batch (bench/throughput.py;
tests/test_fused.py checks it against autograd). The predictions are the model's own
forward (`model(xb)` calls the same forward_t), so metrics see the same numbers.

It is chosen automatically (`fused=None`) where it applies; anything else keeps
autograd. A callback that replaces `learner.preds` or `learner.loss` needs autograd:
the fused path says so instead of ignoring the change.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from descent.core.losses import FUSED_LOSSES
from descent.data.batches import Batches
from descent.errors import ConfigError
from descent.models.mlp import MLP
from descent.models.pixels import PixelClassifier

FUSED_MODELS = (PixelClassifier, MLP)  # exactly these classes: a subclass may change forward


class Autograd:
    """The generic gradient: `model(xb)`, `loss_func(preds, yb)`, `loss.backward()`."""

    fused = False
    code = "loss.backward()"

    def __init__(self, model: nn.Module, loss_func: Callable, why: str = "") -> None:
        self.model, self.loss_func = model, loss_func
        self.why = why  # why not the fused gradient, for `descent explain`

    def predict(self, xb: torch.Tensor) -> torch.Tensor:
        return self.model(xb)

    def loss(self, preds: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return self.loss_func(preds, yb)

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def describe(self) -> str:
        return "autograd"


class FusedGradient:
    """The hand-derived gradient of a PixelClassifier or MLP under cross-entropy, BCE
    or the mnist loss (see the module docstring). Same steps, same numbers as
    Autograd to float rounding; no graph."""

    fused = True
    code = "model.backward_t(saved, dL/dscores)"

    def __init__(self, model: nn.Module, loss_func: Callable) -> None:
        self.model, self.loss_func = model, loss_func
        self.loss_t = FUSED_LOSSES[loss_func][0]
        self.preds = self.value = None

    def predict(self, xb: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            self.scores, self.saved = self.model.forward_t(self.model.pixels(xb))  # (k, n)
        self.preds = self.scores.t()  # (n, k), as model(xb) returns it
        return self.preds

    def loss(self, preds: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        if preds is not self.preds:
            raise ConfigError(_REPLACED.format(what="learner.preds"))
        self.value, self.grad = self.loss_t(self.scores, yb)
        return self.value

    def backward(self, loss: torch.Tensor) -> None:
        if loss is not self.value:
            raise ConfigError(_REPLACED.format(what="learner.loss"))
        with torch.no_grad():
            self.model.backward_t(self.saved, self.grad())  # dL/dscores (k, n) -> p.grad
        self.value = None  # once per loss

    def describe(self) -> str:
        loss = getattr(self.loss_func, "__name__", "loss")
        return f"fused (hand-derived for {type(self.model).__name__} + {loss})"


_REPLACED = (
    "the fused gradient differentiates the model's own predictions and loss, but "
    "{what} was replaced or computed again after it (by a callback?): train with "
    "autograd instead (Learner(..., fused=False), descent train --autograd)"
)


def why_not_fused(
    model: nn.Module, loss_func: Callable, batches: list[Batches | None]
) -> str | None:
    """None when the fused gradient applies to this model, loss and data; else why not."""
    if type(model) not in FUSED_MODELS:
        return f"{type(model).__name__} is not one of descent's classifier heads"
    if loss_func not in FUSED_LOSSES:
        name = getattr(loss_func, "__name__", type(loss_func).__name__)
        return f"the loss {name} has no closed form here (cross_entropy, bce and mnist do)"
    outputs = FUSED_LOSSES[loss_func][1]
    if outputs is not None and model.n_outputs != outputs:
        return f"{loss_func.__name__} takes {outputs} output, the model has {model.n_outputs}"
    if any(not p.requires_grad for p in model.parameters()):
        return "some parameters are frozen"
    if _has_hooks(model):
        return "the model has hooks, which only autograd runs"
    for y in (b.y for b in batches if b is not None):
        if y.dim() != 1 or (outputs is None and y.is_floating_point()):
            return f"targets {tuple(y.shape)} {y.dtype}: the fused losses take (n,) labels"
    return None


def _has_hooks(model: nn.Module) -> bool:
    names = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    if any(getattr(m, name, None) for m in model.modules() for name in names):
        return True
    hooks = ("_backward_hooks", "_post_accumulate_grad_hooks")
    return any(getattr(p, name, None) for p in model.parameters() for name in hooks)


def choose_gradient(
    model: nn.Module,
    loss_func: Callable,
    fused: bool | None = None,
    batches: list[Batches | None] = (),
) -> Autograd | FusedGradient:
    """The gradient for this model and loss: fused where it applies (fused None, the
    default), autograd when fused is False; fused=True insists (ConfigError if not)."""
    if fused is False:
        return Autograd(model, loss_func, "fused=False")
    why = why_not_fused(model, loss_func, list(batches))
    if why is None:
        return FusedGradient(model, loss_func)
    if fused:
        raise ConfigError(f"the fused gradient does not apply: {why}")
    return Autograd(model, loss_func, why)
