"""`descent explain`: the loop every command runs, printed with its callbacks."""

from __future__ import annotations

from descent.callbacks.stopping import Converged, EarlyStopping
from descent.core.learner import Learner
from descent.data.batches import Batches
from descent.data.synthetic import quadratic, roller_coaster
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
    return "The seven steps of learning, as descent runs them (the demo's learner):\n\n" + explain(
        learner
    )
