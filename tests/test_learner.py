"""The loop itself: the book's oracle, event order, control flow, optimizers."""

import pytest
import torch

from descent.commands.demo import plain_loop
from descent.core.events import EVENTS, Callback, CancelEpoch, CancelFit
from descent.core.learner import Learner
from descent.data.batches import Batches
from descent.data.synthetic import quadratic
from descent.errors import ConfigError
from descent.models.function import FunctionModel
from descent.report.explain import explain


def book_learner(t, speed, init, lr=1e-5, **kw):
    model = FunctionModel(quadratic, ["a", "b", "c"], init)
    return Learner(model, Batches(t, speed), loss="mse", optimizer="sgd", lr=lr, **kw)


@pytest.mark.parametrize("init", [[0.3367, 0.1288, 0.2345], [-1.0, 2.0, 30.0], [0.75, -14.0, 70.0]])
def test_ten_sgd_steps_equal_the_plain_loop(roller, init):
    t, speed = roller
    init = torch.tensor(init)
    learner = book_learner(t, speed, init)
    result = learner.fit(10)
    ours = result.history.column("train_loss")
    theirs = plain_loop(t, speed, init, 1e-5, 10)
    assert len(ours) == 10 and result.steps == 10
    for a, b in zip(ours, theirs, strict=True):
        assert abs(a - b) <= 1e-6 * abs(b)
    # and the parameters after the 10 steps, too
    params = init.clone().requires_grad_()
    for _ in range(10):
        loss = ((quadratic(t, params) - speed) ** 2).mean()
        loss.backward()
        params.data -= 1e-5 * params.grad.data
        params.grad = None
    torch.testing.assert_close(learner.model.params.detach(), params.detach(), rtol=1e-6, atol=0)


class Spy(Callback):
    def __init__(self):
        self.calls = []

    def __getattribute__(self, name):
        if name in EVENTS:
            calls = object.__getattribute__(self, "calls")
            return lambda: calls.append(name)
        return object.__getattribute__(self, name)

    def handled_events(self):
        return list(EVENTS)


def test_event_order_with_validation(roller):
    t, speed = roller
    spy = Spy()
    model = FunctionModel(quadratic, "abc", [0.0, 0.0, 0.0])
    train = Batches(t[:12], speed[:12], batch_size=6)
    valid = Batches(t[12:], speed[12:])
    Learner(model, train, valid, lr=1e-5, callbacks=[spy]).fit(1)
    batch = [
        "before_batch",
        "after_pred",
        "after_loss",
        "after_backward",
        "after_step",
        "after_batch",
    ]
    valid_batch = ["before_batch", "after_pred", "after_loss", "after_batch"]
    expected = (
        ["before_fit", "before_epoch", "before_train"]
        + batch * 2
        + ["after_train", "before_validate"]
        + valid_batch
        + ["after_validate", "after_epoch", "after_fit"]
    )
    assert spy.calls == expected


def test_cancel_fit_records_reason_and_after_fit_runs(roller):
    t, speed = roller

    class StopAt3(Callback):
        def after_epoch(self):
            if self.learner.record["epoch"] == 3:
                raise CancelFit("custom", "enough")

    class Ends(Callback):
        ran = False

        def after_fit(self):
            Ends.ran = True

    result = book_learner(t, speed, [0.0, 0.0, 0.0], callbacks=[StopAt3(), Ends()]).fit(10)
    assert (result.stopped, result.message, result.epochs) == ("custom", "enough", 3)
    assert len(result.history) == 3 and Ends.ran


def test_cancel_epoch_skips_the_rest_of_the_batches(roller):
    t, speed = roller

    class OneBatchPerEpoch(Callback):
        def after_batch(self):
            if self.learner.training:
                raise CancelEpoch

    model = FunctionModel(quadratic, "abc", [0.0, 0.0, 0.0])
    learner = Learner(model, Batches(t, speed, batch_size=5), lr=1e-5)
    once = OneBatchPerEpoch()
    result = learner.fit(3, callbacks=[once])
    assert result.steps == 3 and result.epochs == 3
    assert once not in learner.callbacks  # callbacks given to fit are removed afterwards
    assert [cb.name for cb in learner.callbacks] == [
        "DivergenceGuard",
        "ProgressDisplay",
        "InterruptHandler",
    ]


def test_fit_continues_where_it_stopped(roller):
    t, speed = roller
    a = book_learner(t, speed, [0.1, 0.2, 0.3])
    a.fit(4)
    result = a.fit(10)
    b = book_learner(t, speed, [0.1, 0.2, 0.3])
    whole = b.fit(10)
    assert result.epochs == 10 and len(result.history) == 10
    assert result.history == whole.history
    assert torch.equal(a.model.params, b.model.params)


@pytest.mark.parametrize(
    "name, kwargs, cls",
    [
        ("sgd", {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-4}, torch.optim.SGD),
        ("adam", {}, torch.optim.Adam),
        ("AdamW", {"weight_decay": 0.01}, torch.optim.AdamW),
    ],
)
def test_optimizers_by_name_match_torch_optim(roller, name, kwargs, cls):
    t, speed = roller
    u = (t - t.mean()) / t.std()
    init = torch.tensor([0.5, -0.5, 1.0])
    learner = Learner(
        FunctionModel(quadratic, "abc", init),
        Batches(u, speed),
        optimizer=name,
        lr=0.01,
        opt_kwargs=kwargs,
    )
    learner.fit(20)
    assert isinstance(learner.opt, cls)
    params = init.clone().requires_grad_()
    opt = cls([params], lr=0.01, **kwargs)
    for _ in range(20):
        loss = torch.nn.functional.mse_loss(quadratic(u, params), speed)
        loss.backward()
        opt.step()
        opt.zero_grad()
    torch.testing.assert_close(learner.model.params.detach(), params.detach())


def test_lbfgs_uses_the_closure_and_reaches_least_squares(roller):
    t, speed = roller
    t, speed = t.double(), speed.double()
    u = (t - t.mean()) / t.std()
    learner = Learner(
        FunctionModel(quadratic, "abc", torch.zeros(3, dtype=torch.float64)),
        Batches(u, speed),
        optimizer="lbfgs",
        lr=1.0,
        opt_kwargs={
            "line_search_fn": "strong_wolfe",
            "tolerance_grad": 1e-12,
            "tolerance_change": 1e-15,
        },
    )
    learner.fit(5)
    design = torch.stack([u**2, u, torch.ones_like(u)], dim=1)
    exact = torch.linalg.lstsq(design, speed[:, None]).solution.reshape(-1)
    torch.testing.assert_close(learner.model.params.detach(), exact, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize(
    "kwargs, text",
    [
        ({"optimizer": "rmsprop"}, "unknown optimizer 'rmsprop'"),
        ({"optimizer": "sgd", "opt_kwargs": {"betas": (0.9, 0.99)}}, "takes no option betas"),
        ({"optimizer": "sgd", "opt_kwargs": {"nesterov": True}}, "--nesterov needs --momentum"),
        ({"lr": -1.0}, "--lr must be a positive number"),
        ({"loss": "hinge"}, "unknown loss 'hinge'"),
        ({"metrics": ["f1"]}, "unknown metric 'f1'"),
    ],
)
def test_bad_options_are_config_errors(roller, kwargs, text):
    t, speed = roller
    with pytest.raises(ConfigError, match=text.replace("(", r"\(")):
        Learner(FunctionModel(quadratic, "abc", [0.0] * 3), Batches(t, speed), **kwargs)


def test_metrics_on_validation_and_explain(roller):
    t, speed = roller
    model = FunctionModel(quadratic, "abc", [0.75, -14.0, 70.0])
    learner = Learner(
        model,
        Batches(t[:15], speed[:15]),
        Batches(t[15:], speed[15:]),
        lr=1e-6,
        metrics=["rmse", "r2"],
    )
    result = learner.fit(2)
    rec = result.history[-1]
    assert set(rec) == {"epoch", "train_loss", "valid_loss", "valid_rmse", "valid_r2", "time"}
    assert rec["valid_rmse"] == pytest.approx(rec["valid_loss"] ** 0.5, rel=1e-6)
    text = explain(learner)
    for step in ("[1 init]", "[2 predict]", "[3 loss]", "[4 gradient]", "[5 step]", "[6 repeat]"):
        assert step in text
    assert "rmse, r2" in text
