"""[7 stop] Stop rules: callbacks that raise CancelFit with a reason.

The loop bound (max epochs) lives in Learner.fit; everything else is here:
EarlyStopping, DivergenceGuard, TargetLoss, Converged, TimeBudget and
InterruptHandler (Ctrl-C / SIGTERM at a batch boundary).
"""

from __future__ import annotations

import math
import signal
import threading
import time

import torch

from descent.errors import ConfigError
from descent.events import Callback, CancelFit

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
        if min_delta < 0:
            raise ConfigError(f"--min-delta must be 0 or more, got {min_delta}")
        self.monitor, self.mode, self.patience = monitor, mode, patience
        self.min_delta, self.restore_best = min_delta, restore_best
        self.best = math.nan
        self.best_epoch: int | None = None
        self.wait = 0
        self.best_state: dict[str, torch.Tensor] | None = None

    def before_fit(self) -> None:
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
                "early_stopping",
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
        }

    def load_state_dict(self, state: dict) -> None:
        self.monitor, self.mode, self.best = state["monitor"], state["mode"], state["best"]
        self.best_epoch, self.wait = state["best_epoch"], state["wait"]
        self.best_state = state["best_state"]

    def after_fit(self) -> None:
        if (
            self.restore_best
            and self.best_state is not None
            and self.learner.stopped != "interrupted"
        ):
            self.learner.model.load_state_dict(self.best_state)

    def describe(self) -> str:
        monitor = (
            "valid_loss (train_loss without validation)" if self.monitor == "auto" else self.monitor
        )
        return (
            f"stop after {self.patience} epochs without {monitor} improving "
            f"by more than {self.min_delta:g}; restore the best parameters"
        )


class DivergenceGuard(Callback):
    """Stop when the training loss is not finite or explodes; keep good parameters.

    The rule, checked after every epoch: the epoch's train_loss is NaN or infinite,
    or larger than `factor` times the first epoch's. The parameters from the start
    of the previous epoch (the last ones whose every batch gave a finite loss) are
    put back, and the message suggests a lower learning rate.
    """

    order = -10

    def __init__(self, factor: float = 1e4) -> None:
        self.factor = factor

    def before_fit(self) -> None:
        self.first: float | None = None
        params = [p for p in self.learner.model.parameters()]
        self._params = params
        self._cur = [p.detach().clone() for p in params]
        self._prev: list[torch.Tensor] | None = None
        self._cur_epoch = self._prev_epoch = self.learner.epoch

    def before_epoch(self) -> None:
        # Rotate: the snapshot of the epoch before becomes `prev`.
        if self.learner.epoch != self._cur_epoch:
            if self._prev is None:
                self._prev = [c.clone() for c in self._cur]
            self._prev, self._cur = self._cur, self._prev
            self._prev_epoch, self._cur_epoch = self._cur_epoch, self.learner.epoch
            for buf, p in zip(self._cur, self._params, strict=True):
                buf.copy_(p.detach())  # detached: no grad-mode switch needed

    def state_dict(self) -> dict:
        return {
            "first": self.first,
            "cur": self._cur,
            "prev": self._prev,
            "cur_epoch": self._cur_epoch,
            "prev_epoch": self._prev_epoch,
        }

    def load_state_dict(self, state: dict) -> None:
        self.first = state["first"]
        self._cur = [t.clone() for t in state["cur"]]
        self._prev = None if state["prev"] is None else [t.clone() for t in state["prev"]]
        self._cur_epoch, self._prev_epoch = state["cur_epoch"], state["prev_epoch"]

    def after_epoch(self) -> None:
        loss = self.learner.record["train_loss"]
        if self.first is None and math.isfinite(loss):
            self.first = loss
        exploded = self.first is not None and loss > self.factor * max(self.first, 1e-300)
        if math.isfinite(loss) and not exploded:
            return
        keep, kept_epoch = (
            (self._prev, self._prev_epoch) if self._prev else (self._cur, self._cur_epoch)
        )
        with torch.no_grad():
            for p, buf in zip(self._params, keep, strict=True):
                p.copy_(buf)
        lr = self.learner.lr
        what = (
            f"is {loss}"
            if not math.isfinite(loss)
            else f"grew to {loss:.3g} (first {self.first:.3g})"
        )
        start = (
            "the initial parameters"
            if kept_epoch == 0
            else f"the parameters after epoch {kept_epoch}"
        )
        raise CancelFit(
            "diverged",
            f"training diverged at epoch {self.learner.record['epoch']}: train_loss {what}. "
            f"The learning rate {lr:g} is too large for this problem: try --lr {lr / 10:g} "
            f"or lower (or `descent lr-find`). Kept {start}.",
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
                "target_reached", f"{self.monitor} {value:.6g} <= target {self.target:g}"
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
        self._values = list(state["values"])

    def after_epoch(self) -> None:
        self._values.append(_monitor_value(self.learner, self.monitor))
        if len(self._values) <= self.window:
            return
        old, new = self._values[-1 - self.window], self._values[-1]
        if abs(old - new) <= self.rtol * abs(new) + self.atol:
            raise CancelFit(
                "converged",
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
            raise CancelFit("time_budget", f"time budget of {self.seconds:g} s used up")


class InterruptHandler(Callback):
    """Ctrl-C (SIGINT) or SIGTERM: finish the training batch in progress (or the
    epoch, during validation), then stop cleanly.

    The result says "interrupted"; the model keeps its latest parameters. A second
    Ctrl-C during the same fit aborts at once (KeyboardInterrupt). Handlers are
    installed only in the main thread and restored after fit.
    """

    order = 80  # after the stop rules and displays of an epoch: it ends the fit
    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self) -> None:
        self.signal_name: str | None = None

    def before_fit(self) -> None:
        self.signal_name = None
        self.learner.interrupted_by = None
        self._old: dict[int, object] = {}
        if threading.current_thread() is not threading.main_thread():
            return
        for name in self.SIGNALS:
            sig = getattr(signal, name)
            self._old[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: abort now
        self.signal_name = signal.Signals(signum).name

    def after_batch(self) -> None:
        # Training batches only: a signal during validation stops after the epoch.
        if self.signal_name is not None and self.learner.training:
            self._stop(f"at epoch {self.learner.epoch + 1}, batch {self.learner.batches_done}")

    def after_epoch(self) -> None:
        if self.signal_name is not None:
            self._stop(f"after epoch {self.learner.record['epoch']}")

    def _stop(self, where: str) -> None:
        self.learner.interrupted_by = self.signal_name
        raise CancelFit("interrupted", f"interrupted by {self.signal_name} {where}")

    def after_fit(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}


class OptimizerStop(Callback):
    """Stop when the optimizer says it is done: solvers with their own convergence
    test (Levenberg-Marquardt) set `opt.status`, e.g. "converged"."""

    order = 20
    MESSAGES = {
        "converged": "the Gauss-Newton step is below 1e-6 standard errors in every parameter",
        "no_progress": "the sum of squares can no longer be lowered in float64",
    }

    def after_epoch(self) -> None:
        status = getattr(self.learner.opt, "status", None)
        if status:
            raise CancelFit(status, self.MESSAGES.get(status, status))
