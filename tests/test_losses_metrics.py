"""Losses and metrics against numpy / scikit-learn oracles."""

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import r2_score

from descent.core import losses, metrics
from descent.errors import DataError


@pytest.fixture
def pair():
    g = torch.Generator().manual_seed(0)
    return torch.randn(50, generator=g, dtype=torch.float64), torch.randn(
        50, generator=g, dtype=torch.float64
    )


def test_mse_mae(pair):
    p, t = pair
    assert float(losses.mse(p, t)) == pytest.approx(np.mean((p.numpy() - t.numpy()) ** 2))
    assert float(losses.mae(p, t)) == pytest.approx(np.mean(np.abs(p.numpy() - t.numpy())))


def test_shapes_are_never_broadcast(pair):
    p, t = pair
    with pytest.raises(DataError, match=r"predictions \(50, 1\) and targets \(50,\)"):
        losses.mse(p[:, None], t)


def test_mnist_loss_is_the_books():
    preds = torch.tensor([2.0, -1.0, 0.5])
    targets = torch.tensor([1, 0, 0])
    s = torch.sigmoid(preds)
    expected = torch.where(targets == 1, 1 - s, s).mean()
    assert float(losses.mnist_loss(preds, targets)) == pytest.approx(float(expected))


def test_rmse_r2_accumulate_over_batches(pair):
    p, t = pair
    rmse, r2 = metrics.RMSE(), metrics.R2()
    for m in (rmse, r2):
        m.reset()
        for i in range(0, 50, 16):
            m.accumulate(p[i : i + 16], t[i : i + 16])
    assert rmse.value() == pytest.approx(float(np.sqrt(np.mean((p.numpy() - t.numpy()) ** 2))))
    assert r2.value() == pytest.approx(r2_score(t.numpy(), p.numpy()))


def test_accuracy_and_confusion():
    scores = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 1.0], [5.0, 0.0, 0.0]])
    targets = torch.tensor([0, 1, 1, 2])
    acc = metrics.Accuracy()
    acc.reset()
    acc.accumulate(scores, targets)
    assert acc.value() == 0.5
    cm = metrics.confusion_matrix(scores, targets, 3)
    assert cm.tolist() == sk_confusion(targets, scores.argmax(1), labels=[0, 1, 2]).tolist()
    assert metrics.per_class_accuracy(cm).tolist() == [1.0, 0.5, 0.0]
    # one logit: class 1 when above 0
    assert metrics.predicted_class(torch.tensor([[0.3], [-0.2]])).tolist() == [1, 0]
