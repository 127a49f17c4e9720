"""The fused, hand-derived gradient (core/fused.py) against autograd, the oracle: the
gradient of every head and loss it covers, short runs, checkpoints, and where it is
(and is not) chosen."""

import copy

import pytest
import torch
from rich.console import Console

from descent.cli import main
from descent.commands.config import TrainConfig
from descent.commands.explain import explain_command
from descent.commands.train import train_command
from descent.core.events import Callback, CancelFit
from descent.core.fused import Autograd, FusedGradient, choose_gradient
from descent.core.learner import Learner
from descent.core.losses import bce, cross_entropy, mnist_loss, mse
from descent.data.batches import Batches
from descent.data.images import load_images
from descent.errors import ConfigError
from descent.models import MLP, PixelClassifier
from descent.models.function import FunctionModel
from descent.report.explain import explain

HEADS = {
    "pixels": lambda k: PixelClassifier(784, k, init_std=0.01, seed=1),
    "mlp": lambda k: MLP(784, 24, k, seed=1),
}
LOSSES = {"cross_entropy": (cross_entropy, 4), "bce": (bce, 1), "mnist": (mnist_loss, 1)}
CASES = [(h, name) for h in HEADS for name in LOSSES]


def batch(k: int, n: int = 37, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=gen)
    return x, torch.randint(0, max(k, 2), (n,), generator=gen)


def autograd_grads(model, loss_func, x, y):
    loss = loss_func(model(x), y)
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    return loss.detach(), grads


def fused_grads(model, loss_func, x, y):
    fused = FusedGradient(model, loss_func)
    preds = fused.predict(x)
    loss = fused.loss(preds, y)
    fused.backward(loss)
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    return preds, loss, grads


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("head,loss", CASES)
def test_gradient_equals_autograds(head, loss, dtype):
    loss_func, k = LOSSES[loss]
    model = HEADS[head](k).to(dtype)
    x, y = batch(k)
    want_loss, want = autograd_grads(model, loss_func, x, y)
    preds, got_loss, got = fused_grads(model, loss_func, x, y)
    assert torch.equal(preds, model(x).detach())  # the model's own predictions
    assert abs(float(got_loss - want_loss)) <= 1e-6 * abs(float(want_loss))
    assert len(got) == len(want) == len(list(model.parameters()))
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and g.dtype == w.dtype
        assert rel(g, w) <= (1e-6 if dtype == torch.float32 else 1e-12)


def test_gradient_accumulates_as_autograd_does():
    model = PixelClassifier(784, 3, init_std=0.01)
    x, y = batch(3)
    _, want = autograd_grads(model, cross_entropy, x, y)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    fused = FusedGradient(model, cross_entropy)
    fused.backward(fused.loss(fused.predict(x), y))
    for p, w in zip(model.parameters(), want, strict=True):
        assert rel(p.grad, w + 1) <= 1e-6


@pytest.fixture(scope="module")
def digits():
    return load_images("mnist-sample", valid_pct=0.2, seed=0)  # ten classes


def two_classes(data):
    keep = (data.train_y < 2), (data.valid_y < 2)
    return (
        data.train_x[keep[0]],
        data.train_y[keep[0]],
        data.valid_x[keep[1]],
        data.valid_y[keep[1]],
    )


@pytest.mark.parametrize("head,loss", CASES)
def test_five_epochs_end_with_the_same_accuracy_and_parameters(digits, head, loss):
    loss_func, k = LOSSES[loss]
    if k == 1:
        tx, ty, vx, vy = two_classes(digits)
    else:
        tx, ty, vx, vy = digits.train_x, digits.train_y, digits.valid_x, digits.valid_y
        k = 10
    results = {}
    for fused in (None, False):
        learner = Learner(
            HEADS[head](k),
            Batches(tx, ty, 128, seed=0),
            Batches(vx, vy, 1024),
            loss=loss_func,
            optimizer="sgd",
            lr=0.5 if loss == "mnist" else 0.1,
            metrics=["accuracy"],
            progress=False,
            fused=fused,
        )
        assert learner.gradient.fused is (fused is None)
        learner.fit(5)
        results[fused] = learner
    fast, slow = results[None], results[False]
    assert fast.history.column("valid_accuracy") == slow.history.column("valid_accuracy")
    for p, q in zip(fast.model.parameters(), slow.model.parameters(), strict=True):
        assert float((p - q).detach().abs().max()) <= 1e-5 * max(1.0, float(q.detach().abs().max()))
    assert fast.history.column("train_loss") == pytest.approx(
        slow.history.column("train_loss"), rel=1e-5
    )


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_other_optimizers_read_the_same_gradient(digits, optimizer):
    # float64: L-BFGS's 20 inner steps a batch amplify float32 rounding to ~1e-3 in 2 epochs
    tx, ty, vx, vy = two_classes(digits)
    params = []
    for fused in (None, False):
        learner = Learner(MLP(784, 16, 1).double(), Batches(tx, ty, 256, seed=0), loss="bce",
                          optimizer=optimizer, lr=1e-2 if optimizer == "adam" else 0.1,
                          progress=False, fused=fused)  # fmt: skip
        assert learner.gradient.fused is (fused is None)
        learner.fit(2)
        params.append(torch.cat([p.detach().reshape(-1) for p in learner.model.parameters()]))
    assert rel(params[0], params[1]) <= 1e-10


def test_checkpoints_resume_exactly_with_either_path(digits):
    tx, ty, vx, vy = digits.train_x, digits.train_y, digits.valid_x, digits.valid_y

    def learner(fused):
        return Learner(
            MLP(784, 16, 10, seed=3),
            Batches(tx, ty, 256, seed=5),
            Batches(vx, vy, 1024),
            loss="cross_entropy",
            optimizer="adam",
            lr=3e-3,
            metrics=["accuracy"],
            progress=False,
            fused=fused,
        )

    class StopAt(Callback):
        def after_step(self):
            if self.learner.steps == 20:  # epoch 2, mid-way
                raise CancelFit("interrupted", "test")

    whole = learner(None)
    whole.fit(3)
    part = learner(None)
    part.fit(3, callbacks=[StopAt()])
    state = copy.deepcopy(part.state_dict())
    assert state["batches_done"] > 0
    same = learner(None)
    same.load_state_dict(copy.deepcopy(state))
    same.fit(3)
    for p, q in zip(same.model.parameters(), whole.model.parameters(), strict=True):
        assert torch.equal(p, q)  # bit for bit
    assert same.history == whole.history
    other = learner(False)  # a checkpoint of the fused path loads into autograd's
    other.load_state_dict(copy.deepcopy(state))
    other.fit(3)
    for p, q in zip(other.model.parameters(), whole.model.parameters(), strict=True):
        assert (p - q).abs().max() <= 1e-5
    assert other.history.column("valid_accuracy")[-1] == pytest.approx(
        whole.history.column("valid_accuracy")[-1], abs=2e-3
    )


class Custom(PixelClassifier):
    def forward(self, x):
        return super().forward(x) * 2


def test_chosen_only_where_it_applies():
    x, y = batch(3)
    b3 = Batches(x, y)
    yf = torch.rand(len(x), 3)
    assert isinstance(
        choose_gradient(PixelClassifier(784, 3), cross_entropy, None, [b3]), FusedGradient
    )
    assert isinstance(choose_gradient(MLP(784, 8, 1), mnist_loss), FusedGradient)
    assert isinstance(choose_gradient(PixelClassifier(784, 3), cross_entropy, False), Autograd)
    not_fused = {
        "is not one of": (Custom(784, 3), cross_entropy, [b3]),
        "no closed form": (PixelClassifier(784, 3), mse, [b3]),
        "takes 1 output": (PixelClassifier(784, 3), bce, [b3]),
        "targets (37, 3)": (PixelClassifier(784, 3), cross_entropy, [Batches(x, yf)]),
        "a function": (PixelClassifier(784, 3), lambda p, t: cross_entropy(p, t), [b3]),
    }
    for why, (model, loss, batches) in not_fused.items():
        got = choose_gradient(model, loss, None, batches)
        assert isinstance(got, Autograd) and got.describe() == "autograd"
        with pytest.raises(ConfigError, match="does not apply"):
            choose_gradient(model, loss, True, batches)
        if why != "a function":
            assert why in got.why
    frozen = PixelClassifier(784, 3)
    frozen.bias.requires_grad_(False)
    assert "frozen" in choose_gradient(frozen, cross_entropy).why
    hooked = MLP(784, 8, 3)
    hooked.layer1.register_forward_hook(lambda *a: None)
    assert "hooks" in choose_gradient(hooked, cross_entropy).why
    model = FunctionModel(lambda t, p: p[0] * t, ["a"], [1.0])
    assert isinstance(Learner(model, Batches(torch.rand(5), torch.rand(5))).gradient, Autograd)


def test_a_callback_that_replaces_the_predictions_is_refused():
    x, y = batch(3)

    class Doubles(Callback):
        def after_pred(self):
            self.learner.preds = self.learner.preds * 2

    learner = Learner(PixelClassifier(784, 3), Batches(x, y), loss="cross_entropy",
                      callbacks=[Doubles()], progress=False)  # fmt: skip
    with pytest.raises(ConfigError, match="fused=False"):
        learner.fit(1)
    learner = Learner(PixelClassifier(784, 3), Batches(x, y), loss="cross_entropy",
                      callbacks=[Doubles()], progress=False, fused=False)  # fmt: skip
    learner.fit(1)  # autograd follows the change


def test_explain_and_the_run_header_say_which_gradient(tmp_path, capsys):
    x, y = batch(3)
    fused = Learner(PixelClassifier(784, 3), Batches(x, y), loss="cross_entropy", progress=False)
    text = explain(fused)
    assert "model.backward_t(saved, dL/dscores)" in text
    assert "[4 gradient] fused (hand-derived for PixelClassifier + cross_entropy)" in text
    plain = Learner(PixelClassifier(784, 3), Batches(x, y), loss="cross_entropy",
                    progress=False, fused=False)  # fmt: skip
    assert "loss.backward()                              [4 gradient] autograd" in explain(plain)
    assert "fused (hand-derived for PixelClassifier + cross_entropy)" in explain_command()
    args = ["train", "mnist-sample", "--classes", "3,7", "--epochs", "1", "--no-deskew"]
    assert main([*args, "--model", "mlp", "--out", str(tmp_path / "a")]) == 0
    assert "gradient: fused (hand-derived for MLP + bce)" in capsys.readouterr().out
    assert main([*args, "--autograd", "--out", str(tmp_path / "b")]) == 0
    assert "gradient: autograd" in capsys.readouterr().out


def test_train_autograd_and_fused_agree_and_record_the_choice(tmp_path):
    cfg = dict(source="mnist-sample", classes=["3", "7"], epochs=5, patience=0, quiet=True,
               deskew=False, optimizer="sgd", lr=0.5)  # fmt: skip
    runs = {}
    for autograd in (False, True):
        out = tmp_path / str(autograd)
        runs[autograd] = train_command(
            TrainConfig(**cfg, autograd=autograd, out=str(out)), Console(quiet=True)
        )
        assert f'"autograd": {str(autograd).lower()}' in (out / "config.json").read_text()
    fast, slow = runs[False], runs[True]
    assert fast.valid_accuracy == slow.valid_accuracy
    for p, q in zip(fast.model.parameters(), slow.model.parameters(), strict=True):
        assert (p - q).abs().max() <= 1e-5
