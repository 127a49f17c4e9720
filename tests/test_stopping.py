"""Stop rules: early stopping on a scripted loss, divergence, target, convergence,
time budget, and Ctrl-C / SIGTERM at a batch boundary."""

import math
import os
import signal

import pytest
import torch

from descent.callbacks.stopping import Converged, EarlyStopping, TargetLoss, TimeBudget
from descent.core.events import Callback
from descent.core.guards import DivergenceGuard, InterruptHandler
from descent.core.learner import Learner
from descent.data.batches import Batches
from descent.data.synthetic import quadratic
from descent.errors import ConfigError
from descent.models.function import FunctionModel


def make_learner(roller, lr=1e-5, batch_size=None, valid=True, **kw):
    t, speed = roller
    model = FunctionModel(quadratic, "abc", [0.1, 0.2, 0.3])
    if valid:
        return Learner(
            model, Batches(t[:15], speed[:15], batch_size), Batches(t[15:], speed[15:]), lr=lr, **kw
        )
    return Learner(model, Batches(t, speed, batch_size), lr=lr, **kw)


class ScriptedValidLoss(Callback):
    """Replaces valid_loss by a scripted sequence and remembers the parameters."""

    order = 0  # before EarlyStopping (10)

    def __init__(self, losses):
        self.losses, self.params = losses, {}

    def after_epoch(self):
        rec = self.learner.record
        rec["valid_loss"] = self.losses[rec["epoch"] - 1]
        self.params[rec["epoch"]] = self.learner.model.params.detach().clone()


@pytest.mark.parametrize(
    "losses, patience, min_delta, stop_epoch, best_epoch",
    [
        ([5, 4, 3, 3.5, 3.2, 3.1, 2.0, 1.0], 3, 0.0, 6, 3),
        ([5, 4, 3, 2.95, 2.92, 2.91, 2.0, 1.0], 3, 0.1, 6, 3),  # improvements below min_delta
        ([5, 4, 3, 3.5, 2.0, 3.1, 3.2, 3.3, 1.0], 3, 0.0, 8, 5),
        ([5, math.nan, math.nan, 4.0, 4.5], 2, 0.0, 3, 1),  # NaN never improves
    ],
)
def test_early_stopping_on_a_scripted_loss(
    roller, losses, patience, min_delta, stop_epoch, best_epoch
):
    script = ScriptedValidLoss(losses)
    stopper = EarlyStopping(patience=patience, min_delta=min_delta)
    learner = make_learner(roller, callbacks=[script, stopper])
    result = learner.fit(len(losses))
    assert result.stopped == "early_stopping"
    assert result.epochs == stop_epoch and len(result.history) == stop_epoch
    assert result.best_epoch == best_epoch
    assert torch.equal(learner.model.params.detach(), script.params[best_epoch])
    assert f"epoch {best_epoch}" in result.message


def test_early_stopping_max_mode_and_no_restore(roller):
    class Acc(Callback):
        def after_epoch(self):
            self.learner.record["valid_accuracy"] = [0.5, 0.7, 0.6, 0.65][self.learner.epoch]

    learner = make_learner(
        roller, callbacks=[Acc(), EarlyStopping("valid_accuracy", patience=2, restore_best=False)]
    )
    result = learner.fit(10)
    assert (result.stopped, result.best_epoch, result.epochs) == ("early_stopping", 2, 4)


def test_early_stopping_restores_best_at_max_epochs_too(roller):
    script = ScriptedValidLoss([3, 1, 2, 2.5])
    learner = make_learner(roller, callbacks=[script, EarlyStopping(patience=5)])
    result = learner.fit(4)
    assert result.stopped == "max_epochs" and result.best_epoch == 2
    assert torch.equal(learner.model.params.detach(), script.params[2])


def test_early_stopping_unknown_monitor(roller):
    learner = make_learner(roller, callbacks=[EarlyStopping("valid_accuracy")])
    with pytest.raises(ConfigError, match="cannot monitor 'valid_accuracy'.*valid_loss"):
        learner.fit(3)


@pytest.mark.parametrize("batch_size", [None, 4])
def test_divergence_stops_and_keeps_finite_parameters(roller, batch_size):
    learner = make_learner(
        roller, lr=1e-2, batch_size=batch_size, valid=False, callbacks=[DivergenceGuard()]
    )
    seen = []

    class Watch(Callback):
        def before_epoch(self):
            seen.append(self.learner.model.params.detach().clone())

    result = learner.fit(200, callbacks=[Watch()])
    assert result.stopped == "diverged"
    assert "try --lr 0.001" in result.message and "too large" in result.message
    params = learner.model.params.detach()
    assert torch.isfinite(params).all()
    # the parameters kept are those from the start of the epoch before the bad one
    assert torch.equal(params, seen[-2]) if len(seen) > 1 else torch.equal(params, seen[0])
    losses = result.history.column("train_loss")
    assert all(math.isfinite(v) for v in losses[:-1])
    with torch.no_grad():
        t, speed = roller
        assert math.isfinite(float(((learner.model(t) - speed) ** 2).mean()))


def test_divergence_without_nan_by_explosion(roller):
    # lr just above the stability limit: the loss grows geometrically but stays finite
    learner = make_learner(roller, lr=4e-5, valid=False, callbacks=[DivergenceGuard(factor=1e3)])
    result = learner.fit(10_000)
    assert result.stopped == "diverged" and "grew to" in result.message
    assert all(math.isfinite(v) for v in result.history.column("train_loss"))


def test_target_and_converged(roller):
    t, speed = roller
    u = (t - t.mean()) / t.std()
    model = FunctionModel(quadratic, "abc", [0.0, 0.0, 0.0])
    learner = Learner(model, Batches(u, speed), lr=0.2)
    result = learner.fit(1000, callbacks=[TargetLoss(100.0)])
    assert result.stopped == "target_reached"
    assert result.history[-1]["train_loss"] <= 100.0 < result.history[-2]["train_loss"]
    result = learner.fit(100_000, callbacks=[Converged(rtol=1e-6, window=5)])
    assert result.stopped == "converged" and result.epochs < 1000
    losses = result.history.column("train_loss")
    assert abs(losses[-6] - losses[-1]) <= 1e-6 * losses[-1]


def test_time_budget(roller):
    learner = make_learner(roller, valid=False, callbacks=[TimeBudget(0.05)])
    result = learner.fit(10**9)
    assert result.stopped == "time_budget" and result.seconds < 5


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_cleanly_at_a_batch_boundary(roller, sig):
    class SendAt(Callback):
        def after_step(self):
            if self.learner.steps == 7:
                os.kill(os.getpid(), sig)

    handler = InterruptHandler()
    before = signal.getsignal(sig)
    learner = make_learner(roller, batch_size=3, valid=False, callbacks=[handler, SendAt()])
    result = learner.fit(100)
    assert result.interrupted and result.stopped == "interrupted"
    assert learner.interrupted_by == sig.name
    assert result.steps == 7  # the batch in progress finished, no other began
    assert f"interrupted by {sig.name}" in result.message
    assert signal.getsignal(sig) is before  # handlers restored
    assert torch.isfinite(learner.model.params).all()
    again = learner.fit(learner.epoch + 2)  # the model is still usable in memory
    assert again.stopped == "max_epochs"


def test_second_ctrl_c_aborts(roller):
    class SendTwice(Callback):
        def after_step(self):
            if self.learner.steps == 2:
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGINT)

    learner = make_learner(
        roller, batch_size=3, valid=False, callbacks=[InterruptHandler(), SendTwice()]
    )
    with pytest.raises(KeyboardInterrupt):
        learner.fit(100)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
