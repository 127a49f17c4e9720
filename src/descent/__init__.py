"""descent: train models by gradient descent and see every step.

The public API, explicitly: everything a user needs is importable from here.
"""

from descent.data.batches import Batches, random_split
from descent.errors import CheckpointError, ConfigError, DataError, DescentError, FormulaError
from descent.events import Callback, CancelEpoch, CancelFit
from descent.fit import CurveFit, fit_curve
from descent.history import History
from descent.learner import FitResult, Learner
from descent.losses import bce, cross_entropy, mae, mnist_loss, mse
from descent.lr_find import LRFindResult, lr_find
from descent.metrics import R2, RMSE, Accuracy
from descent.models import MLP, PixelClassifier
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
    "CurveFit",
    "DataError",
    "DescentError",
    "DivergenceGuard",
    "EarlyStopping",
    "FitResult",
    "FormulaError",
    "FormulaModel",
    "FunctionModel",
    "History",
    "InterruptHandler",
    "LRFindResult",
    "Learner",
    "MLP",
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
    "lr_find",
    "lr_sweep",
    "mae",
    "mnist_loss",
    "mse",
    "parse_lrs",
    "random_split",
]
