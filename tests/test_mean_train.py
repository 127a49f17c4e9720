"""`descent train --model mean`: the book's pixel-similarity baseline through the CLI,
`descent predict` on it, and the baseline line beside a linear run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from descent.cli import main
from descent.commands.baseline import baseline_accuracy
from descent.commands.config import TrainConfig, check_options
from descent.data.images import load_images
from descent.errors import ConfigError

# README: "3 vs 7 on the bundled sample: the nearest mean image scores 0.9319 on raw pixels
# (the book has about 0.95 on its own split), 0.9791 deskewed".
README_RAW, README_DESKEWED = 0.9319, 0.9791


def _book_accuracy(distance: str) -> float:
    """fastbook ch. 4 in numpy on descent's default split: mean3, mean7, mnist_distance."""
    d = load_images("mnist-sample", classes=["3", "7"])  # seed 0, 20% held out
    tx, vx = d.train_x.numpy() / 255.0, d.valid_x.numpy() / 255.0
    ty = d.train_y.numpy()
    means = [tx[ty == k].mean(0) for k in (0, 1)]
    if distance == "l1":
        dist = [np.abs(vx - m).mean((-1, -2)) for m in means]
    else:
        dist = [np.sqrt(((vx - m) ** 2).mean((-1, -2))) for m in means]
    predicted = (dist[1] < dist[0]).astype(np.int64)
    return float((predicted == d.valid_y.numpy()).mean())


@pytest.fixture(scope="module")
def mean_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mean") / "run"
    argv = ["train", "mnist-sample", "--classes", "3,7", "--model", "mean", "--no-deskew"]
    return out, argv + ["--out", str(out), "--json", str(out.parent / "summary.json")]


def test_the_3_vs_7_baseline_on_raw_pixels(mean_run, capsys):
    out, argv = mean_run
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "nothing to step" in printed and "no loss, gradient, learning rate or epoch" in printed
    assert "epoch " not in printed.split("nothing to step")[1]  # no epoch table
    s = json.loads((out / "summary.json").read_text())
    assert s["model"] == "mean" and s["stopped"] == "no_parameters" and s["epochs"] == 0
    assert s["valid_accuracy"] == pytest.approx(_book_accuracy("l1"))
    assert round(s["valid_accuracy"], 4) == README_RAW  # the book: ~0.95 on its own split
    assert "minus the l1 distance" in s["scores"]
    assert json.loads((out.parent / "summary.json").read_text()) == s
    for name in ("means.png", "confusion.png", "mistakes.png"):
        assert (out / "plots" / name).read_bytes()[:4] == b"\x89PNG"
    assert not (out / "checkpoints").exists() and not (out / "metrics.csv").exists()
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "mean" and config["distance"] == "l1" and config["deskew"] is False


def test_predict_reports_distances_not_probabilities(mean_run, tmp_path, capsys):
    out, argv = mean_run
    if not (out / "model.json").exists():
        assert main(argv) == 0
    from PIL import Image

    d = load_images("mnist-sample", classes=["3", "7"])
    files = []
    for k, label in enumerate(d.labels):
        i = int((d.valid_y == k).nonzero()[0])
        files.append(tmp_path / f"digit_{label}.png")
        Image.fromarray(d.valid_x[i].numpy()).save(files[-1])
    capsys.readouterr()
    assert main(["predict", str(out), *map(str, files), "--json", str(tmp_path / "p.json")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(
        "l1 distance" in line and "nearest mean" in line for line in lines
    )
    preds = json.loads((tmp_path / "p.json").read_text())
    for p in preds:
        assert p["probability"] is None and p["probabilities"] is None
        assert p["measure"] == "l1 distance"
        assert p["distance"] == min(p["distances"].values())
        assert p["distances"][p["label"]] == p["distance"]


def test_l2_and_the_deskewed_default(tmp_path, capsys):
    out = tmp_path / "l2"
    argv = ["train", "mnist-sample", "--classes", "3,7", "--model", "mean", "--distance", "l2"]
    assert main([*argv, "--no-deskew", "--out", str(out), "--quiet"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["distance"] == "l2" and s["valid_accuracy"] == pytest.approx(_book_accuracy("l2"))
    out = tmp_path / "auto"
    assert (
        main(["train", "mnist-sample", "--classes", "3,7", "--model", "mean", "--out", str(out)])
        == 0
    )
    assert "deskew auto: deskewed" in capsys.readouterr().out
    s = json.loads((out / "summary.json").read_text())
    assert round(s["valid_accuracy"], 4) == README_DESKEWED


def test_baseline_accuracy_is_the_mean_model_on_the_same_split():
    d = load_images("mnist-sample", classes=["3", "7"])
    acc = baseline_accuracy(d.train_x, d.train_y, d.valid_x, d.valid_y, 2, "l1")
    assert acc == pytest.approx(_book_accuracy("l1"))
    assert baseline_accuracy(d.train_x, d.train_y, d.valid_x[:0], d.valid_y[:0], 2) is None


def test_refusals(tmp_path, capsys):
    with pytest.raises(ConfigError, match="--distance"):
        check_options(TrainConfig(model="mean", distance="cosine"))
    with pytest.raises(ConfigError, match="--model"):
        check_options(TrainConfig(model="forest"))
    code = main(["lr-find", "mnist-sample", "--model", "mean", "--out", str(tmp_path / "lr")])
    err = capsys.readouterr().err
    assert code == 2 and "--model mean has no parameters to step" in err
    with pytest.raises(SystemExit) as exit_:
        main(["train", "mnist-sample", "--model", "mean", "--distance", "l3"])
    assert exit_.value.code == 2 and "invalid choice: 'l3'" in capsys.readouterr().err
