"""The vectorised learning-rate sweep against its oracle, K separate Learner runs: the
same histories and parameters to float rounding; divergence reported, not raised."""

import json
import math

import pytest
import torch
from torch import nn

from descent import Batches, Learner
from descent.cli import main
from descent.data.images import load_images
from descent.data.synthetic import quadratic, roller_coaster
from descent.errors import ConfigError
from descent.models import MLP, PixelClassifier
from descent.models.formula import FormulaModel
from descent.models.function import FunctionModel
from descent.tuning.sweep import lr_sweep, parse_lrs


@pytest.fixture(scope="module")
def digits():
    """400 training and 100 validation 3s and 7s (28x28 uint8) from the bundled sample."""
    data = load_images("mnist-sample", classes=["3", "7"], valid_pct=0.2, seed=0)
    train = Batches(data.train_x[:400], data.train_y[:400], 64, seed=3)
    return train, Batches(data.valid_x[:100], data.valid_y[:100], 64)


def _alone(make, train, valid, lr, epochs, optimizer="sgd", opt_kwargs=None, **kw) -> Learner:
    learner = Learner(make(), train, valid, optimizer=optimizer, lr=lr, opt_kwargs=opt_kwargs,
                      progress=False, guards=False, **kw)  # fmt: skip
    learner.fit(epochs)
    return learner


def _check_against_separate_runs(sweep, make, train, valid, epochs, rtol, atol, **kw):
    """Every rate's history and final parameters equal a Learner run's at that rate."""
    for i, lr in enumerate(sweep.lrs):
        alone = _alone(make, train, valid, lr, epochs, **kw)
        assert len(sweep.histories[i]) == len(alone.history) == epochs
        for ours, theirs in zip(sweep.histories[i], alone.history, strict=True):
            keys = [k for k in theirs if k != "time"]
            assert [k for k in ours if k != "time"] == keys
            got = torch.tensor([ours[k] for k in keys], dtype=torch.float64)
            want = torch.tensor([theirs[k] for k in keys], dtype=torch.float64)
            torch.testing.assert_close(got, want, rtol=rtol, atol=atol, msg=f"lr {lr}")
        for name, p in alone.model.state_dict().items():
            torch.testing.assert_close(sweep.params(i)[name], p, rtol=rtol, atol=atol)


@pytest.mark.parametrize(
    "optimizer, opt_kwargs, lrs",
    [("sgd", {}, [0.01, 0.1, 0.5, 2.0]),
     ("sgd", {"momentum": 0.9}, [1e-3, 0.01, 0.1, 0.3]),
     ("sgd", {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01}, [1e-3, 0.01, 0.1]),
     ("adam", {}, [1e-4, 1e-3, 1e-2, 3e-2, 0.1, 0.3]),
     ("adamw", {"weight_decay": 0.05}, [1e-4, 1e-3, 1e-2, 3e-2])],
)  # fmt: skip
def test_pixel_classifier_sweep_matches_separate_runs(digits, optimizer, opt_kwargs, lrs):
    train, valid = digits
    make = lambda: PixelClassifier(784, 1, init_std=0.01, seed=1)  # noqa: E731
    sweep = lr_sweep(make(), train, valid, loss="bce", lrs=lrs, epochs=2, optimizer=optimizer,
                     opt_kwargs=opt_kwargs, metrics=["accuracy"])  # fmt: skip
    assert sweep.diverged == [None] * len(lrs)
    _check_against_separate_runs(sweep, make, train, valid, 2, 1e-5, 1e-6, loss="bce",
                                 optimizer=optimizer, opt_kwargs=opt_kwargs,
                                 metrics=["accuracy"])  # fmt: skip


def test_mlp_sweep_matches_separate_runs_and_the_generic_path_agrees(digits):
    train, valid = digits
    make = lambda: MLP(784, 16, 2, seed=2)  # noqa: E731
    kw = dict(loss="cross_entropy", lrs=[0.01, 0.1, 0.5], epochs=2, metrics=["accuracy"])
    sweep = lr_sweep(make(), train, valid, optimizer="adam", **kw)
    _check_against_separate_runs(sweep, make, train, valid, 2, 1e-5, 1e-6,
                                 loss="cross_entropy", optimizer="adam",
                                 metrics=["accuracy"])  # fmt: skip

    class Wrapped(nn.Module):  # no forward_stacked: the vmap path
        def __init__(self):
            super().__init__()
            self.net = make()

        def forward(self, x):
            return self.net(x)

    generic = lr_sweep(Wrapped(), train, valid, optimizer="adam", **kw)
    for ours, theirs in zip(generic.histories, sweep.histories, strict=True):
        assert [r["valid_loss"] for r in ours] == pytest.approx(
            [r["valid_loss"] for r in theirs], rel=1e-5
        )


def test_formula_sweep_in_float64_matches_separate_runs_to_1e_10():
    t, speed = roller_coaster(42, dtype=torch.float64)
    ts = (t - t.mean()) / t.std()
    train, valid = Batches(ts[:16], speed[:16], 5, seed=1), Batches(ts[16:], speed[16:])
    make = lambda: FormulaModel("a*t**2 + b*t + c", [1.0, 1.0, 1.0])  # noqa: E731
    for optimizer, opt_kwargs in (("sgd", {"momentum": 0.9}), ("adam", {})):
        sweep = lr_sweep(make(), train, valid, loss="mse", lrs=[1e-3, 0.01, 0.03, 0.1], epochs=4,
                         optimizer=optimizer, opt_kwargs=opt_kwargs)  # fmt: skip
        assert sweep.stacked["params"].dtype == torch.float64
        _check_against_separate_runs(sweep, make, train, valid, 4, 1e-10, 1e-12, loss="mse",
                                     optimizer=optimizer, opt_kwargs=opt_kwargs)  # fmt: skip


def test_a_diverging_rate_is_reported_and_the_others_are_unharmed():
    t, speed = roller_coaster(42)
    make = lambda: FunctionModel(quadratic, ["a", "b", "c"], [0.3, 0.1, 0.2])  # noqa: E731
    lrs = [1e-6, 1e-5, 1e6]
    seen = []
    sweep = lr_sweep(make(), Batches(t, speed), None, loss="mse", lrs=lrs, epochs=6,
                     on_epoch=lambda e, r: seen.append((e, list(r.diverged))))  # fmt: skip
    # the oracle: the separate run's first epoch > 1e4 x its best earlier one
    blown = _alone(make, Batches(t, speed), None, 1e6, 6, loss="mse").history
    losses = [r["train_loss"] for r in blown]
    first = next(e for e in range(1, 6) if losses[e] > 1e4 * min(losses[:e])) + 1
    assert sweep.diverged == [None, None, first]
    assert seen == [(e, [None, None, first if e >= first else None]) for e in range(1, 7)]
    assert len(sweep.histories[2]) == first and sweep.best_lr == 1e-5
    assert "diverged at epoch 2" in sweep.table()
    for i in (0, 1):
        alone = _alone(make, Batches(t, speed), None, lrs[i], 6, loss="mse")
        assert [r["train_loss"] for r in sweep.histories[i]] == pytest.approx(
            [r["train_loss"] for r in alone.history], rel=1e-6
        )


def test_a_rate_that_overflows_mid_epoch_keeps_its_last_finite_parameters():
    t, speed = roller_coaster(42)
    train = Batches(t, speed, 5, seed=0)  # 4 batches: inf in the second
    make = lambda: FunctionModel(quadratic, ["a", "b", "c"], [0.3, 0.1, 0.2])  # noqa: E731
    sweep = lr_sweep(make(), train, None, loss="mse", lrs=[1e-5, 1e30], epochs=3)
    assert sweep.diverged == [None, 1] and len(sweep.histories[1]) == 1
    assert not math.isfinite(sweep.histories[1][0]["train_loss"])
    frozen = sweep.params(1)["params"]
    assert torch.isfinite(frozen).all() and frozen.abs().max() > 1e20  # one step was taken
    assert sweep.best_index == 0 and json.dumps(sweep.to_json())
    alone = _alone(make, train, None, 1e-5, 3, loss="mse")
    torch.testing.assert_close(sweep.params(0)["params"], alone.model.params.detach())


def test_params_load_into_the_model(digits):
    train, valid = digits
    model = PixelClassifier(784, 1)
    sweep = lr_sweep(model, train, valid, loss="bce", lrs=[0.1, 1.0], epochs=1)
    assert torch.count_nonzero(model.weights) == 0  # the model itself is not changed
    model.load_state_dict(sweep.params(sweep.best_index))
    alone = _alone(lambda: PixelClassifier(784, 1), train, valid, sweep.best_lr, 1, loss="bce")
    torch.testing.assert_close(model(valid.x), alone.model(valid.x), rtol=1e-5, atol=1e-6)


def test_parse_lrs():
    lrs = parse_lrs("1e-3:10:16")
    assert len(lrs) == 16 and lrs[0] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(10)
    assert math.isclose(lrs[1] / lrs[0], lrs[15] / lrs[14])
    assert parse_lrs("0.01, 0.1,1") == [0.01, 0.1, 1.0]
    for bad in ("1e-3:10", "10:1e-3:4", "a,b", "0,1", "-1", "1e-3:1:1", "", "1:2:x", "inf"):
        with pytest.raises(ConfigError, match=r"--lrs .*e\.g\. --lrs 1e-3:10:16"):
            parse_lrs(bad)


def test_refused_options(digits):
    train, _ = digits
    for name in ("lbfgs", "lm", torch.optim.SGD):
        with pytest.raises(ConfigError, match="lr-sweep trains with --optimizer sgd, adam"):
            lr_sweep(PixelClassifier(), train, None, loss="bce", lrs=[0.1], epochs=1,
                     optimizer=name)  # fmt: skip
    with pytest.raises(ConfigError, match="takes no option betas"):
        lr_sweep(PixelClassifier(), train, None, loss="bce", lrs=[0.1], epochs=1,
                 opt_kwargs={"betas": (0.9, 0.99)})  # fmt: skip
    with pytest.raises(ConfigError, match="--lrs must be"):
        lr_sweep(PixelClassifier(), train, None, loss="bce", lrs=[0.1, 0.0], epochs=1)
    with pytest.raises(ConfigError, match="--epochs"):
        lr_sweep(PixelClassifier(), train, None, loss="bce", lrs=[0.1], epochs=0)


def test_cli_lr_sweep(tmp_path, capsys):
    out = tmp_path / "sweep"
    code = main(["lr-sweep", "mnist-sample", "--classes", "3,7", "--lrs", "1e-3:1:4",
                 "--epochs", "2", "--out", str(out)])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "sweep.json").read_text())
    assert len(summary["lrs"]) == 4 and summary["best_lr"] in summary["lrs"]
    assert (out / "sweep.png").stat().st_size > 1000
    assert "<- best" in printed


@pytest.mark.parametrize("loss, k", [("bce", 1), ("mnist", 1), ("cross_entropy", 3)])
def test_pixel_classifier_copies_gradients_by_hand_equal_autograd(loss, k):
    """The sweep's step 4 for PixelClassifier (backward_stacked and the stacked losses'
    closed forms) against autograd through the same stacked forward, copy by copy."""
    from descent.core.losses import STACKED_GRADS, STACKED_LOSSES, get_loss

    gen = torch.Generator().manual_seed(0)
    model = PixelClassifier(784, k, init_std=0.1, seed=2)
    x = torch.randint(0, 256, (37, 28, 28), dtype=torch.uint8, generator=gen)
    y = torch.randint(0, max(k, 2), (37,), generator=gen)
    params = {n: p.detach().unsqueeze(0).repeat(5, *[1] * p.dim()) for n, p in
              model.named_parameters()}  # fmt: skip
    for i, v in enumerate(params.values()):
        v.add_(torch.randn(v.shape, generator=gen) * 0.05 * (i + 1)).requires_grad_(True)
    func = get_loss(loss)
    losses = STACKED_LOSSES[func](model.forward_stacked(params, x), y)
    losses.sum().backward()
    xf = model.pixels(x)
    with torch.no_grad():
        ours, g = STACKED_GRADS[func](model.forward_stacked(params, xf), y)
        grads = model.backward_stacked(xf, g)
    torch.testing.assert_close(ours, losses.detach(), rtol=1e-6, atol=1e-7)
    for name, p in params.items():
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-5, atol=1e-7)
