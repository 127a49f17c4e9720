"""[7 stop] The two guards every Learner has by default (`guards=True`): a clean stop
on Ctrl-C / SIGTERM at a batch boundary, and on a diverging loss. They live beside the
loop because the Learner attaches them itself; the stop rules you add are in
callbacks/stopping.py.
"""

from __future__ import annotations

import math
import signal
import threading

import torch

from descent.core.events import Callback, CancelFit, StopReason
from descent.core.progress import ProgressDisplay


def default_callbacks(progress: bool = True, guards: bool = True) -> list[Callback]:
    """What every Learner has unless told otherwise: the guards (InterruptHandler,
    DivergenceGuard) and the epoch table (ProgressDisplay)."""
    defaults: list[Callback] = [InterruptHandler(), DivergenceGuard()] if guards else []
    return [*defaults, ProgressDisplay()] if progress else defaults


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
        first, cur, prev = state["first"], state["cur"], state["prev"]
        shapes = [p.shape for p in self._params]

        def snapshot_ok(ts: object) -> bool:
            return isinstance(ts, list) and [getattr(t, "shape", None) for t in ts] == shapes

        if not (first is None or isinstance(first, float)) or not snapshot_ok(cur):
            raise TypeError("first must be a number or null, cur the parameters' snapshot")
        if not (prev is None or snapshot_ok(prev)):
            raise TypeError("prev must be null or the parameters' snapshot")
        if not all(type(state[k]) is int for k in ("cur_epoch", "prev_epoch")):
            raise TypeError("cur_epoch and prev_epoch must be integers")
        self.first = first
        self._cur = [t.clone() for t in cur]
        self._prev = None if prev is None else [t.clone() for t in prev]
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
            StopReason.DIVERGED,
            f"training diverged at epoch {self.learner.record['epoch']}: train_loss {what}. "
            f"The learning rate {lr:g} is too large for this problem: try --lr {lr / 10:g} "
            f"or lower (or `descent lr-find`). Kept {start}.",
        )


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
        # The second Ctrl-C aborts now; under torchrun the first one reaches a process
        # twice (from the terminal and relayed by torchrun), so it only stops cleanly.
        alone = getattr(getattr(self.learner, "runner", None), "world_size", 1) == 1
        if self.signal_name is not None and signum == signal.SIGINT and alone:
            raise KeyboardInterrupt
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
        raise CancelFit(StopReason.INTERRUPTED, f"interrupted by {self.signal_name} {where}")

    def after_fit(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}
