"""Choosing the learning rate: the finder (Leslie Smith's range test, as fastai's).

    result = lr_find(learner)        # the learner's model and optimizer are restored
    result.suggestion                # minimum/3: a third of the rate at the lowest loss
    result.suggestions               # {"minimum/3": ..., "minimum/10": ..., "steepest": ...,
                                     #  "valley": ...}

The rule: from `start_lr` the rate grows geometrically to `end_lr` over `steps`
training batches (the learner's own batches, in their seeded order). After each
step the finder measures the loss: on the validation set when there is one (its
first batch, at most 1,024 samples: a linear classifier's training loss keeps
falling at rates far too large for held-out data), else on the training batch.
The sweep stops early when that loss, smoothed causally
(`s_t = beta * s_{t-1} + (1 - beta) * loss_t`, divided by `1 - beta**t`), exceeds
`div` times its lowest value or is not finite. The finder trains a copy of the
learner's model and optimizer and puts every RNG back, so the learner is left as it
was and the finder can run before training without changing it.

The suggestions are read off the curve smoothed without lag (a centred mean over
11 points):

- minimum/3 (the one chosen): a third of the rate at the lowest loss. The lowest
  point comes just before the loss turns up, where the rate is already at the edge
  of stability; a third of it trains within 10% of the best rate of a full sweep on
  the roller-coaster, 3 vs 7 and the MLP (tests/test_lr_find.py checks this);
- minimum/10: fastai's older rule, a tenth of it (safe, often slow);
- steepest: where the loss falls fastest per decade of rate (in log loss);
- valley: fastai's `valley`, two-thirds down the longest stretch of falling loss.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch

from descent.core.events import Callback, CancelFit, StopReason
from descent.core.learner import Learner
from descent.core.optim import clone_optimizer
from descent.core.rng import rng_state, set_rng_state
from descent.errors import ConfigError
from descent.options import LR_FIND_END, LR_FIND_START, LR_FIND_STEPS


@dataclass
class LRFindResult:
    lrs: list[float]
    losses: list[float]  # raw, one per batch
    smoothed: list[float]  # centred means, what the suggestions are read from
    suggestions: dict[str, float]
    stopped: str  # why the sweep ended
    choice: str = "minimum/3"
    seconds: float = 0.0
    monitor: str = "train_loss"

    @property
    def suggestion(self) -> float:
        return self.suggestions[self.choice]

    def describe(self) -> str:
        others = ", ".join(
            f"{name} {lr:.3g}" for name, lr in self.suggestions.items() if name != self.choice
        )
        return (
            f"{self.suggestion:.3g} ({self.choice} of the {self.monitor} over {len(self.lrs)} "
            f"steps from "
            f"{self.lrs[0]:.3g} to {self.lrs[-1]:.3g}, {self.stopped}; {others})"
        )

    def to_json(self) -> dict:
        return {
            "suggestion": self.suggestion,
            "choice": self.choice,
            "suggestions": self.suggestions,
            "stopped": self.stopped,
            "monitor": self.monitor,
            "lrs": self.lrs,
            "losses": self.losses,
            "smoothed": self.smoothed,
            "seconds": self.seconds,
        }


class LRFinder(Callback):
    """Raises the learning rate geometrically batch by batch and records the loss."""

    order = -20  # before every other callback

    def __init__(
        self,
        start_lr: float,
        end_lr: float,
        steps: int,
        beta: float,
        div: float,
        valid: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        self.valid = valid
        self.start_lr, self.end_lr, self.steps = start_lr, end_lr, steps
        self.beta, self.div = beta, div
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self.smoothed: list[float] = []  # causal, for the stop rule
        self.stopped = f"reached {end_lr:g}"

    def _valid_loss(self) -> float:
        learner = self.learner
        learner.model.eval()
        with torch.no_grad():
            loss = learner.calc_loss(learner.predict(self.valid[0]), self.valid[1])
        learner.model.train()
        return float(loss)

    def lr_at(self, i: int) -> float:
        return self.start_lr * (self.end_lr / self.start_lr) ** (i / max(self.steps - 1, 1))

    def _set_lr(self, lr: float) -> None:
        for group in self.learner.opt.param_groups:
            group["lr"] = lr

    def before_fit(self) -> None:
        self._avg = 0.0
        self._set_lr(self.lr_at(0))

    def after_step(self) -> None:
        i = len(self.lrs)
        loss = self._valid_loss() if self.valid is not None else float(self.learner.loss.detach())
        self.lrs.append(self.lr_at(i))
        self.losses.append(loss)
        self._avg = self.beta * self._avg + (1 - self.beta) * loss
        smooth = self._avg / (1 - self.beta ** (i + 1)) if self.beta > 0 else loss
        self.smoothed.append(smooth)
        best = min(self.smoothed)
        if not math.isfinite(smooth) or (i > 0 and smooth > self.div * best):
            self.stopped = f"stopped at {self.lrs[-1]:.3g}: loss {smooth:.3g} > {self.div:g} x best"
            raise CancelFit(StopReason.LR_FIND, self.stopped)
        if i + 1 >= self.steps:
            raise CancelFit(StopReason.LR_FIND, self.stopped)
        self._set_lr(self.lr_at(i + 1))


def lr_find(
    learner,
    start_lr: float = LR_FIND_START,
    end_lr: float = LR_FIND_END,
    steps: int = LR_FIND_STEPS,
    beta: float | None = None,
    div: float = 4.0,
) -> LRFindResult:
    """Run the range test on `learner` and restore it; see the module text.

    beta None: 0.9 when the loss is measured on changing training batches (noisy),
    0 when it is exact (one validation batch, or one training batch per epoch)."""
    if getattr(learner.opt, "jacobian_based", False):
        raise ConfigError(
            "the Levenberg-Marquardt optimizer chooses its own steps and takes no learning "
            "rate: use lr-find with --optimizer sgd, adam or lbfgs"
        )
    if not (0 < start_lr < end_lr < math.inf):
        raise ConfigError(f"lr-find needs 0 < start < end, got {start_lr:g} and {end_lr:g}")
    if steps < 5:
        raise ConfigError(f"lr-find needs at least 5 steps, got {steps}")
    valid = None
    if learner.valid_batches is not None:
        vb = learner.valid_batches
        idx = torch.arange(min(vb.n, 1024))
        valid = (vb.x.index_select(0, idx), vb.y.index_select(0, idx))
    if beta is None:
        beta = 0.9 if valid is None and len(learner.train_batches) > 1 else 0.0
    finder = LRFinder(start_lr, end_lr, steps, beta, div, valid)
    saved = rng_state()
    try:
        result = _twin(learner, finder).fit(-(-steps // len(learner.train_batches)))
    finally:
        set_rng_state(saved)
    if len(finder.lrs) < 3:
        raise ConfigError(
            f"lr-find: the loss blew up within {len(finder.lrs)} steps of {start_lr:g}; "
            "start lower (--start-lr)"
        )
    return LRFindResult(
        lrs=finder.lrs,
        losses=finder.losses,
        smoothed=centred(finder.losses),
        suggestions=suggest(finder.lrs, finder.losses),
        stopped=finder.stopped,
        seconds=result.seconds,
        monitor="valid_loss" if valid is not None else "train_loss",
    )


def suggest(lrs: list[float], losses: list[float]) -> dict[str, float]:
    """The suggestions (see the module text) for a loss curve (raw: smoothed here)."""
    n = len(losses)
    smooth = centred(losses)
    lowest = min(range(n), key=smooth.__getitem__)
    logs = [math.log10(lr) for lr in lrs]
    logl = [math.log(max(v, 1e-300)) for v in smooth]
    slopes = [(logl[i + 1] - logl[i - 1]) / (logs[i + 1] - logs[i - 1]) for i in range(1, n - 1)]
    steepest = lrs[1 + min(range(len(slopes)), key=slopes.__getitem__)] if slopes else lrs[0]
    # valley: the longest run of falling losses (the longest decreasing subsequence
    # ending at each point), then two-thirds of the way down it (fastai's).
    lds = [1] * n
    start = end = 0
    for i in range(1, n):
        for j in range(i):
            if smooth[i] < smooth[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
        if lds[end] < lds[i]:
            end, start = i, i - lds[i]
    third = (end - start) / 3
    valley = lrs[max(0, min(n - 1, start + int(third) + int(third / 2)))]
    return {
        "minimum/3": lrs[lowest] / 3,
        "minimum/10": lrs[lowest] / 10,
        "steepest": steepest,
        "valley": valley,
    }


def centred(losses: list[float], k: int = 5) -> list[float]:
    """The mean of each point and its k neighbours on either side (no lag)."""
    return [_mean(losses[max(0, i - k) : i + k + 1]) for i in range(len(losses))]


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.inf


def _twin(learner: Learner, finder: LRFinder) -> Learner:
    """A learner like `learner` (a copy of its model and optimizer, its loss and
    training batches) with the finder as its only callback: the range test trains
    the copy, and the learner itself is left as it was."""
    twin = copy.deepcopy(learner.model)
    return Learner(
        twin,
        learner.train_batches,
        loss=learner.loss_func,
        optimizer=lambda params, lr: clone_optimizer(learner.opt, params),
        lr=learner.lr,
        callbacks=[finder],
        progress=False,
        guards=False,
        fused=learner.gradient.fused,  # the same step 4 as the learner's
    )
