"""Each schedule against its definition, its plot, and exact resume through a checkpoint."""

import math

import pytest
import torch

from descent import Batches, Learner
from descent.callbacks.schedules import Schedule
from descent.core.events import Callback
from descent.errors import ConfigError
from descent.models import PixelClassifier
from descent.report.plots import plot_schedule

LR = 0.1


def _learner(schedule, epochs_batches=(4, 5), momentum=0.9, optimizer="sgd", extra=()):
    gen = torch.Generator().manual_seed(0)
    n = epochs_batches[1] * 20
    x = torch.randint(0, 256, (n, 4, 4), dtype=torch.uint8, generator=gen)
    y = torch.randint(0, 3, (n,), generator=gen)
    kw = {"momentum": momentum} if optimizer == "sgd" and momentum else {}
    sched = Schedule(schedule)
    learner = Learner(PixelClassifier(16, 3), Batches(x, y, 20, seed=0), loss="cross_entropy",
                      optimizer=optimizer, lr=LR, opt_kwargs=kw, progress=False,
                      callbacks=[sched, *extra])  # fmt: skip
    return learner, sched


def _cos(start, end, pct):  # cosine from start (pct 0) to end (pct 1)
    return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)


def test_one_cycle_follows_its_definition():
    learner, sched = _learner("one-cycle")
    learner.fit(4)
    T = 20  # 4 epochs x 5 batches
    lo, top, end = LR / 25, LR, LR / 25 / 1e5
    up = 0.25 * T - 1  # the last warm-up step (torch's phase boundary)
    expect = [_cos(lo, top, t / up) if t <= up else _cos(top, end, (t - up) / (T - 1 - up))
              for t in range(T)]  # fmt: skip
    for t in (0, 2, 4, 10, 19):
        assert sched.lrs[t] == pytest.approx(expect[t], rel=1e-9)
    assert sched.lrs[0] == pytest.approx(LR / 25) and max(sched.lrs) == pytest.approx(LR)
    # momentum the opposite way: 0.95 -> 0.85 at the peak -> 0.95
    assert sched.momenta[0] == pytest.approx(0.95)
    assert sched.momenta[4] == pytest.approx(0.85)
    assert sched.momenta[19] == pytest.approx(_cos(0.85, 0.95, 15 / 15))


def test_one_cycle_cycles_adams_beta1_and_leaves_plain_sgd_without_momentum():
    learner, sched = _learner("one-cycle", optimizer="adam")
    learner.fit(4)
    assert sched.momenta[4] == pytest.approx(0.85)
    learner, sched = _learner("one-cycle", momentum=0.0)
    learner.fit(4)
    assert set(sched.momenta) == {0.0}


def test_cosine_follows_its_definition():
    learner, sched = _learner("cosine")
    learner.fit(4)
    for t in (0, 5, 10, 19):
        assert sched.lrs[t] == pytest.approx(LR * (1 + math.cos(math.pi * t / 20)) / 2, rel=1e-9)


def test_step_divides_by_ten_every_third_of_the_epochs():
    learner, sched = _learner("step", epochs_batches=(6, 5))
    learner.fit(6)  # step_size = 2 epochs
    per_epoch = [sched.lrs[5 * e] for e in range(6)]
    assert per_epoch == pytest.approx([LR, LR, LR / 10, LR / 10, LR / 100, LR / 100])


class Scripted(Callback):
    """Replaces the epoch's losses by a script, before the Schedule reads them."""

    order = 0

    def __init__(self, losses):
        self.losses = losses

    def after_epoch(self):
        v = self.losses[len(self.learner.history) - 1]
        self.learner.record["train_loss"] = self.learner.record["valid_loss"] = v


def test_plateau_reduces_after_patience_epochs_without_improvement():
    script = Scripted([5.0, 4.0, 4.0, 4.0, 4.0, 3.0, 3.0])
    learner, sched = _learner("plateau", epochs_batches=(7, 5), extra=[script])
    learner.fit(7)
    per_epoch = [sched.lrs[5 * e] for e in range(7)]
    # epochs 3, 4, 5 do not improve on 4.0; after the third (> patience 2) lr / 10
    assert per_epoch == pytest.approx([LR] * 5 + [LR / 10] * 2)


def test_schedule_state_round_trips_through_a_checkpoint(tmp_path):
    from descent.io.checkpoints import load_checkpoint, save_checkpoint

    whole, _ = _learner("one-cycle")
    whole.fit(4)

    first, _ = _learner("one-cycle")

    class Stop(Callback):
        order = 85  # after the Schedule's step, as the InterruptHandler

        def after_step(self):
            if self.learner.steps == 7:
                from descent.core.events import CancelFit

                raise CancelFit("interrupted", "test")

    first.fit(4, callbacks=[Stop()])
    path = save_checkpoint(tmp_path, first.state_dict())
    state, _ = load_checkpoint(path)
    second, sched = _learner("one-cycle")
    second.load_state_dict(state)
    second.fit(4)
    for a, b in zip(whole.model.parameters(), second.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert len(sched.lrs) == 20


def test_unknown_schedule_and_plot():
    with pytest.raises(ConfigError, match="one-cycle"):
        Schedule("linear-warmup")
    fig = plot_schedule([0.1, 0.2, 0.1], [0.9, 0.85, 0.9])
    assert len(fig.axes) == 2


def test_train_with_one_cycle_runs_the_whole_cycle_unless_patience_is_given(tmp_path):
    from descent.commands.config import TrainConfig
    from descent.commands.train import train_command

    def run(name, **kw):
        cfg = TrainConfig(classes=["3", "7"], epochs=12, out=str(tmp_path / name), quiet=True, **kw)
        return train_command(cfg)

    # a rate too high for the middle of the cycle: valid_loss rises there, and early
    # stopping with patience 2 would cut the cycle short before it anneals
    whole = run("oc", schedule="one-cycle", lr=1.0)
    assert whole.fit_result.stopped == "max_epochs" and whole.fit_result.epochs == 12
    cut = run("oc2", schedule="one-cycle", lr=1.0, patience=2)
    assert cut.fit_result.stopped == "early_stopping" and cut.fit_result.epochs < 12
    assert TrainConfig().early_stopping_patience() == 5
    assert TrainConfig(schedule="step").early_stopping_patience() == 5
    assert TrainConfig(schedule="cosine").early_stopping_patience() == 0
    assert TrainConfig(schedule="one-cycle", patience=3).early_stopping_patience() == 3
