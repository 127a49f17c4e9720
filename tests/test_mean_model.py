"""The pixel-similarity baseline against a numpy oracle of the book's computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from descent.commands.train import class_probabilities
from descent.core.metrics import Accuracy
from descent.data.images import load_images
from descent.errors import ConfigError, DataError
from descent.io.models import load_model, save_model
from descent.models import MODEL_KINDS, MeanImageClassifier


@pytest.fixture(scope="module")
def three_seven():
    return load_images("mnist-sample", classes=["3", "7"])


def book_oracle(train_x, train_y, valid_x, distance):
    """fastbook ch. 4 in numpy: mean3 = stacked_threes.mean(0); mnist_distance(a, b) =
    (a - b).abs().mean((-1, -2)); is_3 = mnist_distance(x, mean3) < mnist_distance(x, mean7).
    L2 as the book's F.mse_loss(a, b).sqrt()."""
    tx = train_x.numpy().astype(np.float64) / 255
    vx = valid_x.numpy().astype(np.float64) / 255
    mean3, mean7 = tx[train_y.numpy() == 0].mean(0), tx[train_y.numpy() == 1].mean(0)

    def dist(a, b):
        if distance == "l1":
            return np.abs(a - b).mean((-1, -2))
        return np.sqrt(((a - b) ** 2).mean((-1, -2)))

    d3, d7 = dist(vx, mean3), dist(vx, mean7)  # (m,), (m,)
    return np.stack([d3, d7], axis=1), (d7 < d3).astype(np.int64)  # predicted 1 = "7"


@pytest.mark.parametrize("distance", ["l1", "l2"])
def test_matches_the_books_computation(three_seven, distance):
    d = three_seven
    model = MeanImageClassifier(784, 2, distance).fit(d.train_x, d.train_y)
    scores = model(d.valid_x)  # (m, 2)
    distances, predicted = book_oracle(d.train_x, d.train_y, d.valid_x, distance)
    np.testing.assert_allclose(-scores.double().numpy(), distances, rtol=1e-5, atol=1e-6)
    assert np.array_equal(scores.argmax(1).numpy(), predicted)
    book_accuracy = float((predicted == d.valid_y.numpy()).mean())
    acc = Accuracy()
    acc.reset()
    acc.accumulate(scores, d.valid_y)
    assert acc.value() == pytest.approx(book_accuracy)
    assert acc.value() > 0.9  # the book has ~0.95 on its own split


def test_means_are_the_class_averages_and_are_buffers(three_seven):
    d = three_seven
    model = MeanImageClassifier(784, 2).fit(d.train_x, d.train_y)
    assert list(model.parameters()) == []
    expected = d.train_x[d.train_y == 1].double().mean(0).reshape(-1) / 255
    torch.testing.assert_close(model.class_weights()[1].double(), expected, rtol=1e-6, atol=1e-7)
    assert model.counts.tolist() == [int((d.train_y == 0).sum()), int((d.train_y == 1).sum())]
    assert "no parameters" in repr(model) and f"mean of {len(d.train_y):,} images" in repr(model)
    probs = class_probabilities(model(d.valid_x[:5]))
    assert probs.shape == (5, 2)
    torch.testing.assert_close(probs.sum(1), torch.ones(5))


def test_chunked_fit_equals_one_pass():
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (50, 4, 5), generator=gen, dtype=torch.uint8)
    y = torch.arange(50) % 3
    a = MeanImageClassifier(20, 3, "l2").fit(x, y, chunk=7)
    b = MeanImageClassifier(20, 3, "l2").fit(x, y)
    torch.testing.assert_close(a.means, b.means)
    assert a(x).shape == (50, 3)


def test_model_json_rebuilds_it(tmp_path, three_seven):
    d = three_seven
    model = MeanImageClassifier(784, 2, "l2").fit(d.train_x, d.train_y)
    assert MODEL_KINDS["mean"] is MeanImageClassifier
    save_model(model, tmp_path, labels=d.labels)
    again, desc = load_model(tmp_path)
    assert desc["kind"] == "mean" and desc["args"]["distance"] == "l2"
    torch.testing.assert_close(again(d.valid_x), model(d.valid_x))


def test_refusals():
    with pytest.raises(ConfigError, match="l1 or l2"):
        MeanImageClassifier(784, 2, "cosine")
    x = torch.zeros(4, 2, 2, dtype=torch.uint8)
    with pytest.raises(DataError, match="class 2 has no training images"):
        MeanImageClassifier(4, 3).fit(x, torch.tensor([0, 1, 0, 1]))
