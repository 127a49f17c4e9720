"""Deskew "auto": decided on the validation images; and the epoch budget's rule."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image

from descent.commands.config import TrainConfig
from descent.commands.train import train_command
from descent.data.deskew_choice import choose_deskew
from descent.data.images import load_images


def slanted_bars(n: int = 300, side: int = 16, seed: int = 0):
    """Bars leaning right (label 1) or left (label 0): here the slant is the label, and
    deskewing (which stands every bar upright) would erase it."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, side, side), dtype=np.uint8)
    y = rng.integers(0, 2, size=n)
    for i in range(n):
        slope = rng.uniform(0.3, 0.9) * (1 if y[i] else -1)
        c0 = side / 2 + rng.uniform(-2, 2)
        for r in range(2, side - 2):
            c = int(round(c0 + slope * (r - side / 2)))
            if 0 <= c < side:
                x[i, r, c] = 255
    return torch.from_numpy(x), torch.from_numpy(y)


def test_deskews_the_bundled_digits():
    d = load_images("mnist-sample", classes=["3", "7"])
    choice = choose_deskew(d.train_x, d.train_y, d.valid_x, d.valid_y)
    assert choice.deskew and choice.deskewed_accuracy > choice.raw_accuracy
    assert choice.judged_on == "validation" and choice.n_judged == len(d.valid_y)
    assert choice.describe().startswith("deskewed: ")


def test_keeps_raw_pixels_where_the_slant_is_the_label():
    x, y = slanted_bars()
    choice = choose_deskew(x[:240], y[:240], x[240:], y[240:])
    assert not choice.deskew and choice.raw_accuracy > choice.deskewed_accuracy + 0.2
    assert choice.describe().startswith("raw pixels: ")


def test_without_validation_images_part_of_training_judges():
    x, y = slanted_bars()
    choice = choose_deskew(x, y, x[:0], y[:0], seed=1)
    assert choice.judged_on == "held-out training" and choice.n_judged == 60
    assert choice.n_train == 240 and not choice.deskew
    assert choose_deskew(x, y, x[:0], y[:0], seed=1) == choice  # seeded


def test_epoch_budget_rule():
    assert TrainConfig().max_epochs() == 300  # early stopping ends the run
    assert TrainConfig(patience=0).max_epochs() == 30  # the budget is the run
    assert TrainConfig(schedule="one-cycle").max_epochs() == 30
    assert TrainConfig(schedule="one-cycle", patience=3).max_epochs() == 300
    assert TrainConfig(epochs=7).max_epochs() == 7


def test_train_records_the_decision(tmp_path):
    x, y = slanted_bars(n=200)
    for i, (img, label) in enumerate(zip(x.numpy(), y.tolist(), strict=True)):
        folder = tmp_path / "bars" / ("right" if label else "left")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i}.png")
    cfg = TrainConfig(source=str(tmp_path / "bars"), out=str(tmp_path / "run"), quiet=True)
    result = train_command(cfg)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["deskew"] is False and config["deskew_found"].startswith("raw pixels: ")
    assert config["epochs"] == 300  # resolved: config.json repeats the run as it was
    model = json.loads((tmp_path / "run" / "model.json").read_text())
    assert model["preprocessing"]["deskew"] is False
    assert result.valid_accuracy > 0.9


def test_scoring_in_chunks_gives_the_same_accuracies(monkeypatch):
    import descent.data.deskew_choice as dc

    d = load_images("mnist-sample", classes=["3", "7"])
    whole = choose_deskew(d.train_x, d.train_y, d.valid_x, d.valid_y)
    monkeypatch.setattr(dc, "SCORE_CHUNK", 7)
    chunked = choose_deskew(d.train_x, d.train_y, d.valid_x, d.valid_y)
    assert chunked == whole
