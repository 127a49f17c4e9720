"""Shuffled minibatches from in-memory tensors: index slices of a permutation.

No Dataset, no per-item collate: the whole data set is a tensor on the device,
and a batch is `x[perm[i*bs:(i+1)*bs]]`. Every sample appears exactly once per
epoch, and the order of epoch `e` depends only on `(seed, e)`, so a run that is
resumed in the middle of an epoch sees the very same batches.

Sharded over `world_size` processes (`place(device, rank, world_size)`), every process
draws the same permutation and takes its contiguous share of each global batch
(`tensor_split`: shares differ by at most one sample): no padding, no sample twice,
and the global batches are those of one process.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from descent.errors import ConfigError, DataError
from descent.options import check_bounds, check_valid_pct


class Batches:
    """Minibatches of `(x, y)`.

    Args:
        x: (n, ...) inputs; y: (n, ...) targets (same n).
        batch_size: samples per batch; None means the full batch.
        shuffle: draw a fresh permutation each epoch (default: only when there is
            more than one batch, so a full batch keeps the data's order).
        seed: the permutation of epoch e is drawn from a generator seeded with
            (seed, e).
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int | None = None,
        shuffle: bool | None = None,
        seed: int = 0,
    ) -> None:
        if len(x) != len(y):
            raise DataError(f"{len(x)} inputs but {len(y)} targets: they must pair up one to one")
        if len(x) == 0:
            raise DataError("no samples to train on")
        n = len(x)
        if batch_size is not None:
            check_bounds("batch_size", batch_size)
        self.x, self.y, self.n, self.seed = x, y, n, seed
        self.batch_size = n if batch_size is None else min(batch_size, n)
        self.shuffle = self.batch_size < n if shuffle is None else shuffle
        self.n_batches = -(-n // self.batch_size)
        self.global_sizes = [self.batch_size] * self.n_batches
        self.global_sizes[-1] = n - self.batch_size * (self.n_batches - 1)
        self.place(x.device)
        self.share = 1.0  # world_size * this share / the global batch, of the last batch

    def place(self, device: torch.device | str, rank: int = 0, world_size: int = 1) -> Batches:
        """Move the data to `device` (once; images stay uint8) and take process `rank`'s
        share of every batch out of `world_size`. Returns self."""
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is not one of {world_size} processes")
        self.x, self.y = self.x.to(device), self.y.to(device)
        self.rank, self.world_size = rank, world_size
        self._sizes = torch.tensor(
            [self._span(b)[1] for b in self.global_sizes], dtype=torch.float64
        )
        return self

    def _span(self, size: int) -> tuple[int, int]:
        """(offset, length) of this process's share of a batch of `size` (tensor_split's)."""
        q, r = divmod(size, self.world_size)
        return self.rank * q + min(self.rank, r), q + (self.rank < r)

    def __len__(self) -> int:
        return self.n_batches

    def order(self, epoch: int) -> torch.Tensor | None:
        """The permutation used in `epoch` (None: the data's own order)."""
        if not self.shuffle:
            return None
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=gen).to(self.x.device)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield the batches of `epoch`, beginning at batch number `start`."""
        perm, bs, world = self.order(epoch), self.batch_size, self.world_size
        if perm is None and self.n_batches == 1 and world == 1:
            if start == 0:
                yield self.x, self.y
            return
        for i in range(start, self.n_batches):
            size = self.global_sizes[i]
            offset, length = self._span(size)
            lo, hi = i * bs + offset, i * bs + offset + length  # this process's share
            self.share = world * length / size
            if perm is None:
                yield self.x[lo:hi], self.y[lo:hi]
            else:
                idx = perm[lo:hi]
                # index_select, not x[idx]: the same gather, ~14x faster on CPU
                yield self.x.index_select(0, idx), self.y.index_select(0, idx)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.epoch(0)

    @property
    def sizes(self) -> torch.Tensor:
        """(n_batches,) float64: how many samples each batch of an epoch has (this
        process's share of each, when sharded)."""
        return self._sizes

    def mean_of(self, batch_losses: list[torch.Tensor], start: int = 0) -> torch.Tensor:
        """Sample-weighted mean of per-batch mean losses (of batches start, start+1, ...):
        () for scalar losses, (K,) for the losses of K stacked copies; NaN for none."""
        if not batch_losses:
            return torch.tensor(float("nan"), dtype=torch.float64)
        if len(batch_losses) == 1:
            return batch_losses[0]
        sizes = self._sizes[start : start + len(batch_losses)]
        losses = torch.stack(batch_losses).to(torch.float64)  # (B,) or (B, K)
        weights = sizes.to(losses.device).view(-1, *[1] * (losses.dim() - 1))
        return (losses * weights).sum(0) / sizes.sum()

    def __repr__(self) -> str:
        shard = f", rank {self.rank} of {self.world_size}" if self.world_size > 1 else ""
        return (
            f"Batches(n={self.n}, batch_size={self.batch_size}, batches={self.n_batches}, "
            f"shuffle={self.shuffle}, seed={self.seed}{shard})"
        )


def random_split(n: int, valid_pct: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, valid) of a seeded random split; valid gets round(n * valid_pct).

    Random, not "the last 20%": data files are often sorted by x or by class."""
    check_valid_pct(valid_pct)
    n_valid = int(round(n * valid_pct))
    if valid_pct > 0 and (n_valid == 0 or n_valid == n):
        raise ConfigError(
            f"--valid-pct {valid_pct} of {n} samples leaves an empty training or validation "
            "set: use more data or another --valid-pct"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_valid:].sort().values, perm[:n_valid].sort().values
