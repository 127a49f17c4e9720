"""descent: train models by gradient descent and see every step.

The public API, explicitly: everything a user needs is importable from here. The
names are loaded on first use (PEP 562), so `descent --help` and a bad option are
answered without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> the module that defines it
_EXPORTS = {
    "Batches": "descent.data.batches",
    "random_split": "descent.data.batches",
    "CheckpointError": "descent.errors",
    "ConfigError": "descent.errors",
    "DataError": "descent.errors",
    "DescentError": "descent.errors",
    "FormulaError": "descent.errors",
    "Callback": "descent.events",
    "CancelEpoch": "descent.events",
    "CancelFit": "descent.events",
    "CurveFit": "descent.fit",
    "fit_curve": "descent.fit",
    "Gradient": "descent.gradients",
    "grad": "descent.gradients",
    "History": "descent.history",
    "FitResult": "descent.learner",
    "Learner": "descent.learner",
    "bce": "descent.losses",
    "cross_entropy": "descent.losses",
    "mae": "descent.losses",
    "mnist_loss": "descent.losses",
    "mse": "descent.losses",
    "LRFindResult": "descent.lr_find",
    "lr_find": "descent.lr_find",
    "R2": "descent.metrics",
    "RMSE": "descent.metrics",
    "Accuracy": "descent.metrics",
    "MLP": "descent.models",
    "MeanImageClassifier": "descent.models",
    "PixelClassifier": "descent.models",
    "FormulaModel": "descent.models.formula",
    "FunctionModel": "descent.models.function",
    "ProgressDisplay": "descent.progress",
    "Schedule": "descent.schedules",
    "Converged": "descent.stopping",
    "DivergenceGuard": "descent.stopping",
    "EarlyStopping": "descent.stopping",
    "InterruptHandler": "descent.stopping",
    "TargetLoss": "descent.stopping",
    "TimeBudget": "descent.stopping",
    "SweepResult": "descent.sweep",
    "lr_sweep": "descent.sweep",
    "parse_lrs": "descent.sweep",
}

__all__ = [
    "Accuracy",
    "Batches",
    "Callback",
    "CancelEpoch",
    "CancelFit",
    "CheckpointError",
    "ConfigError",
    "Converged",
    "CurveFit",
    "DataError",
    "DescentError",
    "DivergenceGuard",
    "EarlyStopping",
    "FitResult",
    "FormulaError",
    "FormulaModel",
    "FunctionModel",
    "Gradient",
    "History",
    "InterruptHandler",
    "LRFindResult",
    "Learner",
    "MLP",
    "MeanImageClassifier",
    "PixelClassifier",
    "ProgressDisplay",
    "R2",
    "RMSE",
    "Schedule",
    "SweepResult",
    "TargetLoss",
    "TimeBudget",
    "__version__",
    "bce",
    "cross_entropy",
    "fit_curve",
    "grad",
    "lr_find",
    "lr_sweep",
    "mae",
    "mnist_loss",
    "mse",
    "parse_lrs",
    "random_split",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'descent' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:  # the same names, for type checkers and editors
    from descent.data.batches import Batches, random_split
    from descent.errors import CheckpointError, ConfigError, DataError, DescentError, FormulaError
    from descent.events import Callback, CancelEpoch, CancelFit
    from descent.fit import CurveFit, fit_curve
    from descent.gradients import Gradient, grad
    from descent.history import History
    from descent.learner import FitResult, Learner
    from descent.losses import bce, cross_entropy, mae, mnist_loss, mse
    from descent.lr_find import LRFindResult, lr_find
    from descent.metrics import R2, RMSE, Accuracy
    from descent.models import MLP, MeanImageClassifier, PixelClassifier
    from descent.models.formula import FormulaModel
    from descent.models.function import FunctionModel
    from descent.progress import ProgressDisplay
    from descent.schedules import Schedule
    from descent.stopping import (
        Converged,
        DivergenceGuard,
        EarlyStopping,
        InterruptHandler,
        TargetLoss,
        TimeBudget,
    )
    from descent.sweep import SweepResult, lr_sweep, parse_lrs
