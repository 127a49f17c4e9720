"""PlainSGD, the book's update that plain "sgd" trains with, is bit-identical to
torch.optim.SGD's step, and hands over to torch.optim.SGD when an option needs it."""

import torch

from descent import Batches, Learner
from descent.core.optim import PlainSGD
from descent.models import PixelClassifier


def _data():
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (300, 28, 28), dtype=torch.uint8, generator=gen)
    return x, torch.randint(0, 10, (300,), generator=gen)


def test_plain_sgd_step_equals_torch_optim():
    x, y = _data()
    learner = Learner(PixelClassifier(784, 10), Batches(x, y, 64, seed=1), loss="cross_entropy",
                      lr=0.1, progress=False, fused=False)  # fmt: skip  # the same step 4 as below
    learner.fit(3)
    assert type(learner.opt) is PlainSGD  # the book's update was used

    model = PixelClassifier(784, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = Batches(x, y, 64, seed=1)
    for epoch in range(3):
        for xb, yb in batches.epoch(epoch):
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            opt.zero_grad()
    for ours, theirs in zip(learner.model.parameters(), model.parameters(), strict=True):
        assert torch.equal(ours, theirs)


def test_momentum_uses_torch_sgd_and_hooks_run_on_plain_sgd():
    x, y = _data()
    learner = Learner(PixelClassifier(784, 10), Batches(x, y, 64), loss="cross_entropy",
                      lr=0.1, opt_kwargs={"momentum": 0.9}, progress=False)  # fmt: skip
    learner.fit(1)
    assert type(learner.opt) is torch.optim.SGD
    calls = []
    learner = Learner(PixelClassifier(784, 10), Batches(x, y, 64), loss="cross_entropy",
                      lr=0.1, progress=False)  # fmt: skip
    learner.opt.register_step_post_hook(lambda opt, args, kwargs: calls.append(1))
    learner.fit(1)
    assert type(learner.opt) is PlainSGD and len(calls) == len(learner.train_batches)
