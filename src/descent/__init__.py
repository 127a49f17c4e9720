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
    "Callback": "descent.core.events",
    "CancelEpoch": "descent.core.events",
    "CancelFit": "descent.core.events",
    "CurveFit": "descent.fitting.curve",
    "fit_curve": "descent.fitting.curve",
    "Gradient": "descent.core.gradients",
    "grad": "descent.core.gradients",
    "History": "descent.core.history",
    "FitResult": "descent.core.result",
    "Learner": "descent.core.learner",
    "bce": "descent.core.losses",
    "cross_entropy": "descent.core.losses",
    "mae": "descent.core.losses",
    "mnist_loss": "descent.core.losses",
    "mse": "descent.core.losses",
    "LRFindResult": "descent.tuning.lr_find",
    "lr_find": "descent.tuning.lr_find",
    "R2": "descent.core.metrics",
    "RMSE": "descent.core.metrics",
    "Accuracy": "descent.core.metrics",
    "MLP": "descent.models",
    "MeanImageClassifier": "descent.models",
    "PixelClassifier": "descent.models",
    "FormulaModel": "descent.models.formula",
    "FunctionModel": "descent.models.function",
    "ProgressDisplay": "descent.core.progress",
    "Schedule": "descent.callbacks.schedules",
    "Converged": "descent.callbacks.stopping",
    "DivergenceGuard": "descent.core.guards",
    "EarlyStopping": "descent.callbacks.stopping",
    "InterruptHandler": "descent.core.guards",
    "TargetLoss": "descent.callbacks.stopping",
    "TimeBudget": "descent.callbacks.stopping",
    "StopReason": "descent.core.events",
    "Checkpointer": "descent.callbacks.checkpointer",
    "PredictionSnapshots": "descent.callbacks.snapshots",
    "explain": "descent.report.explain",
    "plot_gradient": "descent.report.gradients",
    "plot_losses": "descent.report.plots",
    "plot_metric": "descent.report.plots",
    "plot_weight_images": "descent.report.plots",
    "plot_mean_images": "descent.report.baseline",
    "SweepResult": "descent.tuning.sweep",
    "lr_sweep": "descent.tuning.sweep",
    "parse_lrs": "descent.tuning.sweep",
}

__all__ = [
    "Accuracy",
    "Batches",
    "Callback",
    "CancelEpoch",
    "CancelFit",
    "CheckpointError",
    "Checkpointer",
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
    "PredictionSnapshots",
    "Schedule",
    "StopReason",
    "SweepResult",
    "TargetLoss",
    "TimeBudget",
    "__version__",
    "bce",
    "cross_entropy",
    "explain",
    "fit_curve",
    "grad",
    "lr_find",
    "lr_sweep",
    "mae",
    "mnist_loss",
    "mse",
    "parse_lrs",
    "plot_gradient",
    "plot_losses",
    "plot_mean_images",
    "plot_metric",
    "plot_weight_images",
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
    from descent.callbacks.checkpointer import Checkpointer
    from descent.callbacks.schedules import Schedule
    from descent.callbacks.snapshots import PredictionSnapshots
    from descent.callbacks.stopping import Converged, EarlyStopping, TargetLoss, TimeBudget
    from descent.core.events import Callback, CancelEpoch, CancelFit, StopReason
    from descent.core.gradients import Gradient, grad
    from descent.core.guards import DivergenceGuard, InterruptHandler
    from descent.core.history import History
    from descent.core.learner import Learner
    from descent.core.losses import bce, cross_entropy, mae, mnist_loss, mse
    from descent.core.metrics import R2, RMSE, Accuracy
    from descent.core.progress import ProgressDisplay
    from descent.core.result import FitResult
    from descent.data.batches import Batches, random_split
    from descent.errors import CheckpointError, ConfigError, DataError, DescentError, FormulaError
    from descent.fitting.curve import CurveFit, fit_curve
    from descent.models import MLP, MeanImageClassifier, PixelClassifier
    from descent.models.formula import FormulaModel
    from descent.models.function import FunctionModel
    from descent.report.baseline import plot_mean_images
    from descent.report.explain import explain
    from descent.report.gradients import plot_gradient
    from descent.report.plots import plot_losses, plot_metric, plot_weight_images
    from descent.tuning.lr_find import LRFindResult, lr_find
    from descent.tuning.sweep import SweepResult, lr_sweep, parse_lrs
