"""descent: train models by gradient descent and see every step.

The public API, explicitly: everything a user needs is importable from here.
"""

from descent.data.batches import Batches, random_split
from descent.errors import CheckpointError, ConfigError, DataError, DescentError, FormulaError
from descent.events import Callback, CancelEpoch, CancelFit
from descent.history import History
from descent.learner import FitResult, Learner
from descent.losses import bce, cross_entropy, mae, mnist_loss, mse
from descent.metrics import R2, RMSE, Accuracy
from descent.models.function import FunctionModel
from descent.progress import ProgressDisplay
from descent.stopping import (
    Converged,
    DivergenceGuard,
    EarlyStopping,
    InterruptHandler,
    TargetLoss,
    TimeBudget,
)

__version__ = "0.1.0"

__all__ = [
    "Accuracy",
    "Batches",
    "Callback",
    "CancelEpoch",
    "CancelFit",
    "CheckpointError",
    "ConfigError",
    "Converged",
    "DataError",
    "DescentError",
    "DivergenceGuard",
    "EarlyStopping",
    "FitResult",
    "FormulaError",
    "FunctionModel",
    "History",
    "InterruptHandler",
    "Learner",
    "ProgressDisplay",
    "R2",
    "RMSE",
    "TargetLoss",
    "TimeBudget",
    "__version__",
    "bce",
    "cross_entropy",
    "mae",
    "mnist_loss",
    "mse",
    "random_split",
]
