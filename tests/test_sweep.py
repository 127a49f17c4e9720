"""The vectorised learning-rate sweep: the same numbers as separate runs, divergence
reported instead of raised, and the CLI."""

import json
import math

import pytest
import torch

from descent import Batches, Learner
from descent.cli import main
from descent.data.synthetic import quadratic, roller_coaster
from descent.errors import ConfigError
from descent.models import MLP, PixelClassifier
from descent.models.formula import FormulaModel
from descent.models.function import FunctionModel
from descent.sweep import lr_sweep, parse_lrs


def _digits(n=300, k=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 8, 8), dtype=torch.uint8, generator=gen)
    y = torch.randint(0, k, (n,), generator=gen)
    return x, y


def _separate(make_model, train, valid, loss, lr, epochs, optimizer, opt_kwargs, metrics=()):
    learner = Learner(make_model(), train, valid, loss=loss, optimizer=optimizer, lr=lr,
                      opt_kwargs=opt_kwargs, metrics=metrics, progress=False,
                      guards=False)  # fmt: skip
    learner.fit(epochs)
    return learner


@pytest.mark.parametrize(
    "optimizer, opt_kwargs",
    [("sgd", {}), ("sgd", {"momentum": 0.9, "nesterov": True}), ("adam", {}),
     ("adamw", {"weight_decay": 0.05}), ("sgd", {"weight_decay": 0.01})],
)  # fmt: skip
def test_sweep_matches_separate_runs(optimizer, opt_kwargs):
    x, y = _digits()
    train, valid = Batches(x[:240], y[:240], 64, seed=3), Batches(x[240:], y[240:], 64)
    lrs = [1e-3, 1e-2, 0.1, 0.5] if optimizer == "sgd" else [1e-4, 1e-3, 1e-2, 3e-2]
    make = lambda: PixelClassifier(64, 3, init_std=0.01, seed=1)  # noqa: E731
    sweep = lr_sweep(make(), train, valid, loss="cross_entropy", lrs=lrs, epochs=2,
                     optimizer=optimizer, opt_kwargs=opt_kwargs, metrics=["accuracy"])  # fmt: skip
    for i, lr in enumerate(lrs):
        alone = _separate(make, train, valid, "cross_entropy", lr, 2, optimizer, opt_kwargs,
                          ["accuracy"])  # fmt: skip
        for ours, theirs in zip(sweep.histories[i], alone.history, strict=True):
            for key in ("train_loss", "valid_loss", "valid_accuracy"):
                assert ours[key] == pytest.approx(theirs[key], rel=1e-5, abs=1e-7), (lr, key)
        for name, p in alone.model.named_parameters():
            torch.testing.assert_close(sweep.params(i)[name], p.detach(), rtol=1e-5, atol=1e-6)


def test_sweep_of_an_mlp_and_of_a_formula_in_float64():
    x, y = _digits(200, 2)
    train = Batches(x, y, 50, seed=0)
    make = lambda: MLP(64, 16, 2, seed=2)  # noqa: E731
    sweep = lr_sweep(make(), train, None, loss="cross_entropy", lrs=[0.01, 0.1], epochs=2)
    alone = _separate(make, train, None, "cross_entropy", 0.1, 2, "sgd", {})
    assert sweep.histories[1][-1]["train_loss"] == pytest.approx(
        alone.history[-1]["train_loss"], rel=1e-5
    )
    t, speed = roller_coaster(42, dtype=torch.float64)
    ts = (t - t.mean()) / t.std()
    make = lambda: FormulaModel("a*t**2 + b*t + c", [1.0, 1.0, 1.0])  # noqa: E731
    sweep = lr_sweep(make(), Batches(ts, speed), None, loss="mse", lrs=[0.01, 0.1], epochs=5)
    alone = _separate(make, Batches(ts, speed), None, "mse", 0.1, 5, "sgd", {})
    for ours, theirs in zip(sweep.histories[1], alone.history, strict=True):
        assert ours["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-12)


def test_a_diverging_rate_is_reported_and_the_others_are_unharmed():
    t, speed = roller_coaster(42)
    init = torch.tensor([0.3, 0.1, 0.2])
    make = lambda: FunctionModel(quadratic, ["a", "b", "c"], init)  # noqa: E731
    lrs = [1e-6, 1e-5, 1e6]
    sweep = lr_sweep(make(), Batches(t, speed), None, loss="mse", lrs=lrs, epochs=6)
    assert sweep.diverged[:2] == [None, None] and sweep.diverged[2] is not None
    assert sweep.best_lr == 1e-5
    alone = _separate(make, Batches(t, speed), None, "mse", 1e-5, 6, "sgd", {})
    assert sweep.histories[1][-1]["train_loss"] == pytest.approx(
        alone.history[-1]["train_loss"], rel=1e-5
    )
    assert "diverged at epoch" in sweep.table()


def test_parse_lrs():
    lrs = parse_lrs("1e-3:10:16")
    assert len(lrs) == 16 and lrs[0] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(10)
    assert math.isclose(lrs[1] / lrs[0], lrs[15] / lrs[14])
    assert parse_lrs("0.01, 0.1,1") == [0.01, 0.1, 1.0]
    for bad in ("1e-3:10", "10:1e-3:4", "a,b", "0,1", "1e-3:1:1", ""):
        with pytest.raises(ConfigError, match="--lrs"):
            parse_lrs(bad)


def test_refused_optimizers():
    x, y = _digits(50)
    for name in ("lbfgs", "lm"):
        with pytest.raises(ConfigError, match="lr-sweep trains with"):
            lr_sweep(PixelClassifier(64, 3), Batches(x, y), None, loss="cross_entropy",
                     lrs=[0.1], epochs=1, optimizer=name)  # fmt: skip


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
