"""The learning-rate finder: reproducible, restores what it touched, and its suggestion
trains within 10% of the best rate a full sweep finds."""

import json
import math

import pytest
import torch

from descent import Batches, Learner
from descent.cli import main
from descent.commands.config import TrainConfig
from descent.commands.train import make_learner, prepare_data
from descent.data.synthetic import quadratic, roller_coaster
from descent.errors import ConfigError
from descent.models.function import FunctionModel
from descent.tuning.lr_find import lr_find, suggest
from descent.tuning.sweep import lr_sweep

THREE_SEVEN = TrainConfig(source="mnist-sample", classes=["3", "7"], quiet=True)


@pytest.fixture(scope="module")
def digits():
    return prepare_data(THREE_SEVEN)


def test_same_seed_same_suggestion(digits):
    a = lr_find(make_learner(THREE_SEVEN, digits, 1e-3))
    b = lr_find(make_learner(THREE_SEVEN, digits, 1e-3))
    assert a.losses == b.losses and a.suggestion == b.suggestion


def test_the_finder_puts_the_learner_back(digits):
    plain = make_learner(THREE_SEVEN, digits, 3e-3)
    plain.fit(2)
    probed = make_learner(THREE_SEVEN, digits, 3e-3)
    before = [p.detach().clone() for p in probed.model.parameters()]
    lr_find(probed)
    assert all(torch.equal(a, b) for a, b in zip(before, probed.model.parameters(), strict=True))
    assert len(probed.history) == 0 and probed.opt.param_groups[0]["lr"] == 3e-3
    probed.fit(2)  # training after the finder is the same as without it
    assert all(
        torch.equal(a, b)
        for a, b in zip(plain.model.parameters(), probed.model.parameters(), strict=True)
    )


def test_suggestion_on_three_vs_seven_trains_within_10pct_of_the_sweeps_best(digits):
    epochs = 3
    found = lr_find(make_learner(THREE_SEVEN, digits, 1e-3))
    learner = make_learner(THREE_SEVEN, digits, found.suggestion)
    ours = min(r["valid_loss"] for r in learner.fit(epochs).history)
    probe = make_learner(THREE_SEVEN, digits, 1e-3)
    lrs = torch.logspace(-4, 1, 16).tolist()
    sweep = lr_sweep(probe.model, probe.train_batches, probe.valid_batches,
                     loss=probe.loss_func, lrs=lrs, epochs=epochs, optimizer="adam")  # fmt: skip
    best = min(v for v in sweep.best_loss if math.isfinite(v))
    assert ours <= 1.10 * best, (found.describe(), ours, best)


def test_suggestion_on_the_standardised_roller_coaster_within_10pct_of_the_sweep():
    t, speed = roller_coaster(42, dtype=torch.float64)
    ts = (t - t.mean()) / t.std()
    init = torch.randn(3, generator=torch.Generator().manual_seed(42), dtype=torch.float64)

    def learner(lr):
        model = FunctionModel(quadratic, ["a", "b", "c"], init)
        return Learner(model, Batches(ts, speed), loss="mse", lr=lr, progress=False)

    found = lr_find(learner(0.1))
    epochs = 30
    ours = min(r["train_loss"] for r in learner(found.suggestion).fit(epochs).history)
    probe = learner(0.1)
    sweep = lr_sweep(probe.model, probe.train_batches, None, loss="mse",
                     lrs=torch.logspace(-3, 1, 16).tolist(), epochs=epochs)  # fmt: skip
    best = min(v for v in sweep.best_loss if math.isfinite(v))
    assert ours <= 1.10 * best, (found.describe(), ours, best)
    assert any(d is not None for d in sweep.diverged)  # the sweep reaches past stability


def test_suggest_reads_the_curve():
    lrs = [10 ** (-6 + 0.1 * i) for i in range(70)]  # 1e-6 .. 1e0.9
    # falls from 1 to 0.1 around lr 1e-3, lowest at lr 1e-1, then rises
    losses = [0.1 + 0.9 / (1 + math.exp(3 * (math.log10(lr) + 3))) for lr in lrs]
    losses = [v + (max(0.0, math.log10(lr) + 1)) ** 2 for v, lr in zip(losses, lrs, strict=True)]
    s = suggest(lrs, losses)
    assert s["minimum/3"] == pytest.approx(s["minimum/10"] * 10 / 3)
    assert 1e-3 / 3 < s["steepest"] < 1e-2  # in log loss: a little past the midpoint
    assert 0.03 < s["minimum/10"] * 10 < 0.3


def test_levenberg_marquardt_has_no_rate_to_find(tmp_path):
    from descent.commands.config import FitConfig
    from descent.commands.fit import build_fit_learner, load_fit_data
    from descent.models.formula import FormulaModel

    csv = tmp_path / "d.csv"
    csv.write_text("t,y\n" + "".join(f"{i},{2 * i + 1}\n" for i in range(10)))
    cfg = FitConfig(data=str(csv), model="a*t+b", y="y")
    data = load_fit_data(cfg)
    with pytest.raises(ConfigError, match="Levenberg-Marquardt"):
        lr_find(build_fit_learner(cfg, FormulaModel(data.formula, None), data.x, data.y))


def test_cli_lr_find_and_fit_lr_auto(tmp_path, capsys):
    t, speed = roller_coaster(42)
    csv = tmp_path / "roller.csv"
    rows = zip(t.tolist(), speed.tolist(), strict=True)
    csv.write_text("time,speed\n" + "".join(f"{a:g},{b!r}\n" for a, b in rows))
    out = tmp_path / "lf"
    assert main(["lr-find", str(csv), "--y", "speed", "--model", "a*time**2+b*time+c",
                 "--out", str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    found = json.loads((out / "lr_find.json").read_text())
    assert (out / "lr_find.png").stat().st_size > 1000
    assert f"{found['suggestion']:.3g}  <- suggested" in printed
    # --lr auto: the fit runs at the finder's rate and reaches the least-squares optimum
    run = tmp_path / "fit"
    assert main(["fit", str(csv), "--y", "speed", "--model", "a*time**2+b*time+c",
                 "--lr", "auto", "--out", str(run), "--no-plots", "-q"]) == 0  # fmt: skip
    summary = json.loads((run / "summary.json").read_text())
    assert summary["optimizer"] == "sgd" and summary["lr"] == pytest.approx(found["suggestion"])
    assert "minimum/3" in summary["lr_found"]
    a, b, c = (summary["params"][k] for k in "abc")
    coef = torch.tensor(__import__("numpy").polyfit(t.double().numpy(), speed.double().numpy(), 2))
    assert torch.allclose(torch.tensor([a, b, c], dtype=torch.float64), coef, rtol=1e-5)
