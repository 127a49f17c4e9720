"""`descent explain`: the loop every command runs, printed with its callbacks."""

from __future__ import annotations

from descent.callbacks.stopping import Converged, EarlyStopping
from descent.core.fused import choose_gradient
from descent.core.learner import Learner
from descent.core.losses import FUSED_LOSSES, LOSS_FUNCTIONS, cross_entropy
from descent.data.batches import Batches
from descent.data.synthetic import quadratic, roller_coaster
from descent.models import PixelClassifier
from descent.models.function import FunctionModel
from descent.report.explain import explain


def explain_command() -> str:
    """The seven steps as descent runs them, on the demo's roller-coaster learner."""
    t, speed = roller_coaster()
    learner = Learner(
        FunctionModel(quadratic, ["a", "b", "c"], [1.0, 1.0, 1.0]),
        Batches(t, speed),
        loss="mse",
        optimizer="sgd",
        lr=1e-5,
        callbacks=[EarlyStopping(), Converged()],
    )
    return (
        "The seven steps of learning, as descent runs them (the demo's learner):\n\n"
        + explain(learner)
        + "\n\n"
        + train_gradients()
    )


def train_gradients() -> str:
    """Step 4 as `descent train` takes it (its models with its classifier losses)."""
    gradient = choose_gradient(PixelClassifier(784, 10), cross_entropy)
    losses = ", ".join(name for name, f in LOSS_FUNCTIONS.items() if f in FUSED_LOSSES)
    return (
        f"[4 gradient] in descent train: {gradient.code} in place of loss.backward(),\n"
        f"  for --model linear and mlp with --loss {losses}, e.g.\n"
        f"  gradient: {gradient.describe()};\n"
        "  descent train --autograd: gradient: autograd (core/fused.py says why both agree)"
    )
