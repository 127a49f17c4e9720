"""Models: plain torch.nn.Modules, usable without a Learner. [1 init, 2 predict]

Each savable model has a `kind`, a `config()` with its constructor arguments,
and is listed here so that checkpoint.load_model can rebuild it from JSON.
"""

from descent.models.formula import FormulaModel, parse_formula
from descent.models.function import FunctionModel
from descent.models.mean import MeanImageClassifier
from descent.models.mlp import MLP
from descent.models.pixels import PixelClassifier

MODEL_KINDS = {
    "pixels": PixelClassifier,
    "mlp": MLP,
    "formula": FormulaModel,
    "mean": MeanImageClassifier,
}

__all__ = [
    "MLP",
    "MODEL_KINDS",
    "FormulaModel",
    "FunctionModel",
    "MeanImageClassifier",
    "PixelClassifier",
    "parse_formula",
]
