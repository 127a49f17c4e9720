"""[7 stop] Stop rules you add: callbacks that raise CancelFit with a StopReason.

The loop bound (max epochs) lives in Learner.fit, and the two guards every Learner
has by default (Ctrl-C / SIGTERM, divergence) in core/guards.py; here are
EarlyStopping, TargetLoss, Converged and TimeBudget.
"""

from __future__ import annotations

import math
import time

import torch

from descent.core.events import Callback, CancelFit, StopReason
from descent.errors import ConfigError
from descent.options import check_bounds

_MAXIMISE = ("accuracy", "r2")


def _monitor_value(learner, monitor: str) -> float:
    try:
        return float(learner.record[monitor])
    except KeyError:
        have = ", ".join(k for k in learner.record if k not in ("epoch", "time"))
        raise ConfigError(f"cannot monitor {monitor!r}: this run records {have}") from None


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class EarlyStopping(Callback):
    """Stop when `monitor` stops improving, and restore the best parameters.

    The rule, checked after every epoch: with mode "min" an epoch improves when its
    value v < best - min_delta (mode "max": v > best + min_delta); the first finite
    value always improves, NaN never does. After `patience` epochs in a row without
    improvement, training stops with reason "early_stopping". When training ends
    for any reason but an interrupt, and `restore_best` is on, the parameters of
    the best epoch are loaded back (an interrupted run keeps its latest
    parameters so that it can be resumed). mode "auto" maximises accuracy and
    r2 and minimises everything else. `monitor` "auto" is valid_loss when there
    is a validation set, else train_loss.
    """

    order = 10

    def __init__(
        self,
        monitor: str = "auto",
        mode: str = "auto",
        patience: int = 3,
        min_delta: float = 0.0,
        restore_best: bool = True,
    ) -> None:
        if mode not in ("auto", "min", "max"):
            raise ConfigError(f"early stopping mode must be min, max or auto, got {mode!r}")
        if patience < 1:
            raise ConfigError(f"--patience must be at least 1, got {patience}")
        check_bounds("min_delta", min_delta)
        self.monitor, self.mode, self.patience = monitor, mode, patience
        self.min_delta, self.restore_best = min_delta, restore_best
        self.best = math.nan
        self.best_epoch: int | None = None
        self.wait = 0
        self.best_state: dict[str, torch.Tensor] | None = None

    def before_fit(self) -> None:
        self.trained_state = None  # a checkpoint of this fit holds the parameters it trains
        if self.monitor == "auto":
            self.monitor = "valid_loss" if self.learner.valid_batches is not None else "train_loss"
        if self.mode == "auto":
            self.mode = "max" if any(s in self.monitor for s in _MAXIMISE) else "min"

    def improved(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if math.isnan(self.best):
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def after_epoch(self) -> None:
        value = _monitor_value(self.learner, self.monitor)
        if self.improved(value):
            self.best, self.best_epoch, self.wait = value, int(self.learner.record["epoch"]), 0
            self.learner.best_epoch = self.best_epoch
            if self.restore_best:
                self.best_state = _snapshot(self.learner.model)
            return
        self.wait += 1
        if self.wait >= self.patience:
            raise CancelFit(
                StopReason.EARLY_STOPPING,
                f"{self.monitor} did not improve for {self.patience} epochs; "
                f"best {self.best:.6g} at epoch {self.best_epoch}",
            )

    def state_dict(self) -> dict:
        return {
            "monitor": self.monitor,
            "mode": self.mode,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "best_state": self.best_state,
            "trained_state": self.trained_state,
        }

    def load_state_dict(self, state: dict) -> None:
        model = self.learner.model.state_dict()
        best_state = state["best_state"]
        ok = (
            isinstance(state["monitor"], str)
            and state["mode"] in ("min", "max")
            and isinstance(state["best"], (int, float))
            and (state["best_epoch"] is None or type(state["best_epoch"]) is int)
            and type(state["wait"]) is int
            and (
                best_state is None
                or isinstance(best_state, dict)
                and set(best_state) == set(model)
                and all(getattr(best_state[k], "shape", None) == model[k].shape for k in model)
            )
        )
        if not ok:
            raise TypeError("monitor, mode, best, best_epoch, wait or best_state of another kind")
        self.monitor, self.mode, self.best = state["monitor"], state["mode"], float(state["best"])
        self.best_epoch, self.wait = state["best_epoch"], state["wait"]
        self.best_state = state["best_state"]
        trained = state.get("trained_state")
        if trained is not None:
            # The checkpoint was written after the best parameters were restored: go on
            # from where training was (`descent resume --epochs` extends a finished run
            # as if it had never stopped).
            self.learner.model.load_state_dict(trained)

    trained_state: dict[str, torch.Tensor] | None = None  # the parameters restore replaced

    def after_fit(self) -> None:
        self.trained_state = None
        if (
            self.restore_best
            and self.best_state is not None
            and self.learner.stopped != StopReason.INTERRUPTED
        ):
            self.trained_state = _snapshot(self.learner.model)
            self.learner.model.load_state_dict(self.best_state)

    def describe(self) -> str:
        monitor = (
            "valid_loss (train_loss without validation)" if self.monitor == "auto" else self.monitor
        )
        return (
            f"stop after {self.patience} epochs without {monitor} improving "
            f"by more than {self.min_delta:g}; restore the best parameters"
        )


class TargetLoss(Callback):
    """Stop when `monitor` (default train_loss) reaches `target` or below."""

    order = 20

    def __init__(self, target: float, monitor: str = "train_loss") -> None:
        self.target, self.monitor = target, monitor

    def after_epoch(self) -> None:
        value = _monitor_value(self.learner, self.monitor)
        if value <= self.target:
            raise CancelFit(
                StopReason.TARGET_REACHED, f"{self.monitor} {value:.6g} <= target {self.target:g}"
            )


class Converged(Callback):
    """Stop when the loss has stopped changing.

    The rule, checked after every epoch: |L[e - window] - L[e]| <= rtol * |L[e]| + atol,
    where L is `monitor` (default train_loss) and window epochs have passed.
    """

    order = 20

    def __init__(
        self, rtol: float = 1e-9, atol: float = 0.0, window: int = 10, monitor: str = "train_loss"
    ) -> None:
        self.rtol, self.atol, self.window, self.monitor = rtol, atol, window, monitor

    def before_fit(self) -> None:
        self._values: list[float] = []

    def state_dict(self) -> dict:
        return {"values": list(self._values)}

    def load_state_dict(self, state: dict) -> None:
        values = state["values"]
        if not isinstance(values, list) or not all(isinstance(v, (int, float)) for v in values):
            raise TypeError("values must be a list of numbers")
        self._values = [float(v) for v in values]

    def rule(self) -> str:
        """The rule in words, e.g. 'train_loss changes by less than 1e-12 (relative)
        over 20 epochs'."""
        rate = f"{self.rtol:g} (relative)"
        return f"{self.monitor} changes by less than {rate} over {self.window} epochs"

    def after_epoch(self) -> None:
        self._values.append(_monitor_value(self.learner, self.monitor))
        if len(self._values) <= self.window:
            return
        old, new = self._values[-1 - self.window], self._values[-1]
        if abs(old - new) <= self.rtol * abs(new) + self.atol:
            raise CancelFit(
                StopReason.CONVERGED,
                f"{self.monitor} changed by less than {self.rtol:g} (relative) "
                f"over {self.window} epochs: {new:.10g}",
            )
        del self._values[: -self.window - 1]


class TimeBudget(Callback):
    """Stop at the first batch boundary after `seconds` of training."""

    order = 20

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def before_fit(self) -> None:
        self.deadline = time.perf_counter() + self.seconds

    def after_batch(self) -> None:
        if time.perf_counter() > self.deadline:
            raise CancelFit(StopReason.TIME_BUDGET, f"time budget of {self.seconds:g} s used up")
