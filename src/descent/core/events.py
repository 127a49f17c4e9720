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
each other; they read and write the learner's state (`learner.loss`, ...). A stop
rule raises CancelFit with a StopReason; the fit ends with that reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import Enum
from typing import Any

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


class StopReason(str, Enum):
    """Why a fit ended. A str, so `result.stopped == "interrupted"` holds and JSON
    stores the plain name."""

    MAX_EPOCHS = "max_epochs"  # the loop bound: every epoch asked for has run
    EARLY_STOPPING = "early_stopping"  # the monitored value stopped improving
    DIVERGED = "diverged"  # the loss is not finite or exploded
    TARGET_REACHED = "target_reached"
    CONVERGED = "converged"  # the loss (or, for LM, the step) stopped changing
    NO_PROGRESS = "no_progress"  # LM: the sum of squares cannot be lowered in float64
    TIME_BUDGET = "time_budget"
    INTERRUPTED = "interrupted"  # Ctrl-C, SIGTERM or a stop from the page: resumable
    LR_FIND = "lr_find"  # the learning-rate finder's sweep ended
    CANCELLED = "cancelled"  # CancelFit without a reason
    NO_PARAMETERS = "no_parameters"  # nothing to step (the mean-image baseline): no loop ran
    ERROR = "error"  # an exception escaped the loop

    __str__ = str.__str__
    __format__ = str.__format__


# A run that ended so can be continued from its checkpoint; any other end is final.
RESUMABLE = (StopReason.INTERRUPTED, StopReason.ERROR)


class CancelFit(Exception):  # noqa: N818 - a signal, not an error
    """Stop training now. `reason` is recorded in the result (e.g. "early_stopping")."""

    def __init__(self, reason: StopReason | str = StopReason.CANCELLED, message: str = "") -> None:
        if reason in {r.value for r in StopReason}:  # a callback's own reason stays a str
            reason = StopReason(reason)
        super().__init__(message or reason)
        self.reason = reason
        self.message = message or str(reason)


class CancelEpoch(Exception):  # noqa: N818
    """Skip the rest of the current epoch's training batches (validation still runs)."""


class Callback:
    """Base class: override any of the methods named in EVENTS.

    `order` sorts callbacks (lower runs first). `learner` is set when the callback
    is attached. Only the events a subclass overrides are called, so an unused
    event costs nothing in the hot path.
    """

    order: int = 0
    learner: Any  # the Learner it is attached to (set by add_callbacks)

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
        """One line for `descent explain`: the docstring's first paragraph, joined."""
        first = (self.__doc__ or "").strip().split("\n\n")[0]
        return " ".join(first.split())


def handlers_by_event(callbacks: list[Callback]) -> dict[str, list[Callable[[], None]]]:
    """Sort `callbacks` by order (in place) and list, per event, the bound methods of
    those that override it: an event no callback handles is a loop over []."""
    callbacks.sort(key=lambda cb: cb.order)
    return {e: [getattr(cb, e) for cb in callbacks if e in cb.handled_events()] for e in EVENTS}


class Callbacks:
    """The callbacks of a loop and their dispatch: `fire(event)` calls, in order, the
    method of each callback that handles `event` (the Learner's base)."""

    callbacks: list[Callback]

    def add_callbacks(self, callbacks: Iterable[Callback]) -> None:
        for cb in callbacks:
            cb.learner = self
            self.callbacks.append(cb)
        self._handlers = handlers_by_event(self.callbacks)  # sorts them by order

    def remove_callbacks(self, callbacks: Iterable[Callback]) -> None:
        for cb in callbacks:
            self.callbacks.remove(cb)
        self._handlers = handlers_by_event(self.callbacks)

    def fire(self, event: str) -> None:
        for handler in self._handlers[event]:
            handler()


# Give the base class a no-op method per event, so `handled_events` can compare.
for _event in EVENTS:
    setattr(Callback, _event, lambda self: None)
