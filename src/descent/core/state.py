"""The learner's state for checkpoints: everything needed to continue exactly.

`Learner.state_dict()` holds the parameters, the optimizer, the position (epochs
done, batches done in the next), the partial epoch's losses, the history, the
callbacks' states and the RNG states. Tensors stay tensors (io/checkpoints.py
stores them in safetensors, the rest as JSON). `load_state_dict` puts parameters,
optimizer and position back at once, and the callbacks' states and RNGs when the
next `fit` has run their `before_fit` (`apply_pending_state`).
"""

from __future__ import annotations

import torch

from descent.core.events import RESUMABLE, Callback, CancelFit, StopReason
from descent.core.history import History
from descent.core.rng import rng_state, set_rng_state
from descent.errors import CheckpointError

# What a callback's load_state_dict or set_rng_state raises for a state that is not one
# it wrote (a checkpoint edited by hand): the fit refuses it as a CheckpointError.
BAD_STATE = (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError,
             RuntimeError)  # fmt: skip


class LearnerState:
    """The position of a Learner in its run, and state_dict / load_state_dict to save
    and restore it with everything else (a base class: the loop is in learner.py)."""

    _pending_state: dict | None = None
    _pending_source: object = "the checkpoint"

    def reset_position(self) -> None:
        """A fresh run: no epoch done, no step taken, an empty history."""
        self.history = History()
        self.epoch = 0  # 0-based index of the epoch in progress; records say epoch + 1
        self.steps = 0
        self.best_epoch: int | None = None  # 1-based, set by EarlyStopping
        self.record: dict[str, float] = {}  # the last epoch's
        self.batches_done = 0  # training batches done in the epoch in progress
        self.train_losses: list[torch.Tensor] = []  # their losses (kept for a resume)
        self.stopped: StopReason | str | None = None  # set when a fit ends
        self.stop_message = ""
        self.interrupted_by: str | None = None  # set by InterruptHandler

    def state_dict(self) -> dict:
        names = callback_keys(self.callbacks)
        return {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "epochs_done": len(self.history),
            "batches_done": self.batches_done,
            "train_losses": list(self.train_losses),
            "steps": self.steps,
            "best_epoch": self.best_epoch,
            "history": [dict(r) for r in self.history],
            "callbacks": {k: cb.state_dict() for k, cb in zip(names, self.callbacks, strict=True)},
            "rng": rng_state(),
            "stopped": None if self.stopped is None else str(self.stopped),
            "stop_message": self.stop_message,
        }

    def load_state_dict(self, state: dict, source: object = "the checkpoint") -> None:
        """Take a state_dict: parameters, optimizer and position at once, the
        callbacks' states when the next fit has run their before_fit. `source` (the
        checkpoint's file) names it when a callback refuses its state."""
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.history = History(state["history"])
        self.epoch = state["epochs_done"]
        self.batches_done = state["batches_done"]
        self.train_losses = list(state["train_losses"])
        self.steps = state["steps"]
        self.best_epoch = state["best_epoch"]
        if self.history.rows:
            self.record = dict(self.history.rows[-1])
        self._pending_state, self._pending_source = state, source

    def apply_pending_state(self) -> None:
        """Give the callbacks and the RNGs their checkpointed states (once, at the
        start of the fit after load_state_dict). A checkpoint of a run that had
        already stopped ends this fit at once with the same reason."""
        state, self._pending_state = self._pending_state, None
        if state is None:
            return
        names = callback_keys(self.callbacks)
        key = "rng"
        try:
            for key, cb in zip(names, self.callbacks, strict=True):  # noqa: B007
                if key in state["callbacks"]:
                    cb.load_state_dict(state["callbacks"][key])
            key = "rng"
            set_rng_state(state["rng"])
        except BAD_STATE as e:
            raise CheckpointError(
                f"{self._pending_source}: the state of {key} does not fit this run ({e}); "
                "it was not written by descent"
            ) from None
        stopped = state["stopped"]
        if stopped is not None and stopped not in RESUMABLE:
            raise CancelFit(stopped, state["stop_message"])


def callback_keys(callbacks: list[Callback]) -> list[str]:
    """Names that identify callbacks in a checkpoint: the class name, with #2, #3
    for further ones of the same class."""
    seen: dict[str, int] = {}
    keys = []
    for cb in callbacks:
        seen[cb.name] = seen.get(cb.name, 0) + 1
        keys.append(cb.name if seen[cb.name] == 1 else f"{cb.name}#{seen[cb.name]}")
    return keys
