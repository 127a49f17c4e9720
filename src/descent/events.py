"""The named events of the training loop, the Callback base, and the control-flow
exceptions that callbacks raise to stop an epoch or the whole fit.

The loop (learner.py) announces each event in this order:

    before_fit
      before_epoch
        before_train
          before_batch  after_pred  after_loss  after_backward  after_step  after_batch
        after_train
        before_validate
          before_batch  after_pred  after_loss  after_batch
        after_validate
      after_epoch
    after_fit          (always, also after CancelFit or an error)

A callback is any object with methods named after events. Callbacks do not call
each other; they read and write the learner's state (`learner.loss`, ...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from descent.learner import Learner

EVENTS: tuple[str, ...] = (
    "before_fit",
    "before_epoch",
    "before_train",
    "before_batch",
    "after_pred",
    "after_loss",
    "after_backward",
    "after_step",
    "after_batch",
    "after_train",
    "before_validate",
    "after_validate",
    "after_epoch",
    "after_fit",
)


class CancelFit(Exception):  # noqa: N818 - a signal, not an error
    """Stop training now. `reason` is recorded in the result (e.g. "early_stopping")."""

    def __init__(self, reason: str = "cancelled", message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason
        self.message = message or reason


class CancelEpoch(Exception):  # noqa: N818
    """Skip the rest of the current epoch's training batches (validation still runs)."""


class Callback:
    """Base class: override any of the methods named in EVENTS.

    `order` sorts callbacks (lower runs first). `learner` is set when the callback
    is attached. Only the events a subclass overrides are called, so an unused
    event costs nothing in the hot path.
    """

    order: int = 0
    learner: Learner

    @property
    def name(self) -> str:
        return type(self).__name__

    def handled_events(self) -> list[str]:
        """The events this callback overrides (worked out once per class)."""
        cls = type(self)
        if "_handled" not in cls.__dict__:
            cls._handled = [e for e in EVENTS if getattr(cls, e, None) is not getattr(Callback, e)]
        return cls._handled

    def state_dict(self) -> dict:
        """JSON-able state for checkpoints (tensors under key "tensors")."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what state_dict returned."""

    def describe(self) -> str:
        """One line for `descent explain`."""
        return (self.__doc__ or "").strip().splitlines()[0] if self.__doc__ else ""


# Give the base class a no-op method per event, so `handled_events` can compare.
for _event in EVENTS:
    setattr(Callback, _event, lambda self: None)
