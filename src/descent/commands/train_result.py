"""What `descent train` returns, whichever model it trained (commands/train.py for the
linear model and the net, commands/baseline.py for the mean images)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from descent.core.result import FitResult
from descent.io.rundir import RunDir


@dataclass
class TrainResult:
    fit_result: FitResult  # what the loop did: why it stopped, epochs, history
    valid_accuracy: float | None  # of the parameters kept
    per_class: dict[str, float]
    confusion: list[list[int]]
    labels: list[str]
    run_dir: RunDir
    model: torch.nn.Module
    summary: dict = field(default_factory=dict)
    finish_signal: str | None = None  # a signal that came while the run wrote its files
