"""The in-memory batcher and the validation split."""

import pytest
import torch

from descent.data.batches import Batches, random_split
from descent.errors import ConfigError, DataError


@pytest.mark.parametrize("n, bs", [(100, 32), (64, 64), (10, 3), (7, 100)])
def test_each_sample_once_per_epoch(n, bs):
    x = torch.arange(n)
    batches = Batches(x, x * 10, batch_size=bs, seed=3)
    for epoch in range(3):
        seen = torch.cat([xb for xb, _ in batches.epoch(epoch)])
        assert sorted(seen.tolist()) == list(range(n))
        assert all(torch.equal(yb, xb * 10) for xb, yb in batches.epoch(epoch))
    assert len(batches) == -(-n // min(bs, n))


def test_same_seed_same_order_other_seed_other_order():
    x = torch.arange(50)

    def order(seed, epoch):
        return torch.cat([xb for xb, _ in Batches(x, x, 8, seed=seed).epoch(epoch)]).tolist()

    assert order(1, 0) == order(1, 0)
    assert order(1, 0) != order(2, 0)
    assert order(1, 0) != order(1, 1)  # a fresh permutation each epoch
    # resuming at batch 3 gives the remaining batches of the same order
    rest = torch.cat([xb for xb, _ in Batches(x, x, 8, seed=1).epoch(0, start=3)]).tolist()
    assert rest == order(1, 0)[24:]


def test_full_batch_keeps_the_order_and_yields_the_tensors_themselves():
    x = torch.arange(20.0)
    ((xb, yb),) = list(Batches(x, -x).epoch(0))
    assert xb is x and torch.equal(yb, -x)


def test_weighted_mean_of_batch_losses():
    x = torch.arange(10.0)
    batches = Batches(x, x, batch_size=4)  # sizes 4, 4, 2
    losses = [torch.tensor(1.0), torch.tensor(2.0), torch.tensor(4.0)]
    assert float(batches.mean_of(losses)) == pytest.approx((4 + 8 + 8) / 10)
    assert float(batches.mean_of(losses[1:], start=1)) == pytest.approx((8 + 8) / 6)


def test_bad_batches():
    with pytest.raises(DataError, match="3 inputs but 2 targets"):
        Batches(torch.zeros(3), torch.zeros(2))
    with pytest.raises(ConfigError, match="--batch-size must be at least 1"):
        Batches(torch.zeros(3), torch.zeros(3), batch_size=0)


def test_random_split_is_seeded_disjoint_and_complete():
    tr, va = random_split(100, 0.2, seed=5)
    assert len(va) == 20 and len(tr) == 80
    assert sorted(torch.cat([tr, va]).tolist()) == list(range(100))
    tr2, va2 = random_split(100, 0.2, seed=5)
    assert torch.equal(va, va2)
    _, va3 = random_split(100, 0.2, seed=6)
    assert not torch.equal(va, va3)
    assert va.tolist() != list(range(80, 100))  # not "the last 20%"
    with pytest.raises(ConfigError, match="--valid-pct"):
        random_split(10, 1.5)
