"""The loop for Levenberg-Marquardt: the same seven steps, with steps 2-4 read from
the residuals the optimizer evaluates anyway, and its own stop rule."""

from __future__ import annotations

import torch

from descent.core.events import Callback, CancelFit
from descent.core.learner import Learner


class JacobianLearner(Learner):
    """A Learner for optimizers that differentiate each residual inside their own
    step (Levenberg-Marquardt, `jacobian_based`).

    Such an optimizer evaluates the residuals r = f(x, b) - y at the current
    parameters for its step anyway, so in training [2 predict] is r + y and [3 loss]
    is mean(r**2) from that evaluation (one forward pass per step, not two), and
    [4 gradient] has nothing to do: the Jacobian is taken inside the step.
    Validation predicts and measures as any Learner does."""

    def predict(self, xb: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().predict(xb)
        preds, self._residual_loss = self.opt.predictions_and_loss()
        return preds

    def calc_loss(self, preds: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().calc_loss(preds, yb)
        return self._residual_loss  # of the residuals behind `preds`

    def backward(self) -> None:
        """Nothing to do: the optimizer takes the Jacobian of the residuals itself."""


class OptimizerStop(Callback):
    """Stop when the optimizer says it is done: solvers with their own convergence
    test (Levenberg-Marquardt) set `opt.status`, e.g. "converged"."""

    order = 20

    def after_epoch(self) -> None:
        opt = self.learner.opt
        if opt.status:
            raise CancelFit(opt.status, opt.status_message())
