"""What `Learner.fit` returns."""

from __future__ import annotations

from dataclasses import dataclass

from descent.core.events import StopReason
from descent.core.history import History


@dataclass
class FitResult:
    """What `Learner.fit` returns: why it stopped, and what it did."""

    stopped: StopReason | str
    message: str
    epochs: int  # epochs completed, over all calls to fit
    steps: int  # optimizer steps taken, over all calls to fit
    seconds: float
    history: History
    best_epoch: int | None = None  # 1-based, set by EarlyStopping
    signal: str | None = None  # "SIGINT" or "SIGTERM" when interrupted by one

    @property
    def interrupted(self) -> bool:
        return self.stopped == StopReason.INTERRUPTED
