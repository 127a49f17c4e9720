"""The loop on one process or on several: where a stop is decided and where the epoch's
numbers are summed. The Learner asks its `runner` at exactly two places and never
branches on which it has:

    runner.stop_point(event)   after_batch and after_epoch: the events where stop rules
                               and interrupts raise CancelFit
    runner.reduce_epoch()      inside the one sync per epoch

`OneProcess` fires the event and sums nothing. `ProcessGroupRun` (torchrun, WORLD_SIZE
> 1) makes a stop anywhere a stop everywhere, at the same batch boundary: every process
fires the event, then all agree on the largest stop code (an all_reduce of one integer;
0 = go on), and the processes that did not stop raise the agreed reason themselves.
Its epoch numbers are exact over processes: the train and validation losses as
(sum of loss x samples, samples) and each metric's `sums`, in one float64 all_reduce.
`ShardedGradient` is steps 2-4 through DistributedDataParallel (distributed/group.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from descent.core.events import CancelFit, StopReason
from descent.distributed.devices import resolve_device
from descent.errors import ConfigError

if TYPE_CHECKING:
    from descent.data.batches import Batches
    from descent.distributed.group import Group

_REASONS = list(StopReason)
_SIGNALS = (None, "SIGINT", "SIGTERM")


class OneProcess:
    """A run on one process: events fire, nothing is reduced."""

    world_size = 1

    def __init__(self, learner) -> None:
        self.learner = learner

    def wrap(self, model):
        return model

    def shard(self, gradient):
        return gradient

    def stop_point(self, event: str) -> None:
        self.learner.fire(event)

    def reduce_epoch(self) -> None:
        pass


class ProcessGroupRun(OneProcess):
    """A run on the processes of `group`: stops agreed, epoch numbers summed exactly."""

    def __init__(self, learner, group: Group) -> None:
        super().__init__(learner)
        self.group, self.world_size = group, group.world_size
        for m in learner.metrics:
            if not m.sums:
                raise ConfigError(
                    f"metric {m.name!r} cannot be reduced over processes: list its sums "
                    "(the attributes accumulated over samples) in its `sums`"
                )

    def wrap(self, model):
        return self.group.wrap(model)  # DistributedDataParallel

    def shard(self, gradient):
        return ShardedGradient(gradient, self.learner.train_batches, self.world_size)

    def stop_point(self, event: str) -> None:
        stop = None
        try:
            self.learner.fire(event)
        except CancelFit as e:
            stop = e
        agreed = self.group.agree(stop_code(stop, self.learner))
        if stop is not None:
            raise stop
        if agreed:
            reason, signal = decode_stop(agreed)
            where = f"at epoch {self.learner.epoch + 1}, batch {self.learner.batches_done}"
            if signal is not None:
                self.learner.interrupted_by = signal
                raise CancelFit(reason, f"interrupted by {signal} in another process {where}")
            raise CancelFit(reason, f"another process stopped ({reason}) {where}")

    def reduce_epoch(self) -> None:
        learn = self.learner
        train_n = learn.train_batches.sizes[: len(learn.train_losses)].sum()
        parts = [learn.train_loss * train_n, train_n]
        if learn.valid_batches is not None:
            valid_n = learn.valid_batches.sizes.sum()
            parts += [learn.valid_loss * valid_n, valid_n]
        parts += [getattr(m, name) for m in learn.metrics for name in m.sums]
        device = learn.train_batches.x.device
        flat = torch.stack([torch.as_tensor(p, dtype=torch.float64, device=device) for p in parts])
        total = self.group.sum(flat).tolist()  # (4 + sums,) float64 over processes
        learn.train_loss = torch.tensor(total[0] / total[1] if total[1] else float("nan"))
        rest = total[2:]
        if learn.valid_batches is not None:
            learn.valid_loss = torch.tensor(rest[0] / rest[1] if rest[1] else float("nan"))
            rest = rest[2:]
        for m in learn.metrics:
            for name in m.sums:
                setattr(m, name, rest.pop(0))


def stop_code(stop: CancelFit | None, learner) -> int:
    """0 for no stop; else the reason (and the signal of an interrupt) as one integer."""
    if stop is None:
        return 0
    reason = stop.reason if isinstance(stop.reason, StopReason) else StopReason.CANCELLED
    signal = learner.interrupted_by if reason == StopReason.INTERRUPTED else None
    sig = _SIGNALS.index(signal) if signal in _SIGNALS else 0
    return 1 + _REASONS.index(reason) * len(_SIGNALS) + sig


def decode_stop(code: int) -> tuple[StopReason, str | None]:
    reason, sig = divmod(code - 1, len(_SIGNALS))
    return _REASONS[reason], _SIGNALS[sig]


class ShardedGradient:
    """Steps 2-4 on this process's share of a global batch of B samples, through DDP.

    DDP averages the processes' gradients, so each process scales its mean loss by
    world_size x (its share) / B: the average is then the gradient of the global batch's
    mean, as one process with batch B computes it, whatever the shares. A process with
    no sample in a batch (a last batch smaller than the processes) still takes part in
    the all_reduce, with a zero gradient."""

    fused = False

    def __init__(self, inner, batches: Batches, world_size: int) -> None:
        self.inner, self.batches, self.world_size = inner, batches, world_size
        self.model, self.why = inner.model, getattr(inner, "why", "")
        self.code = f"({inner.code.removesuffix('.backward()')} * share).backward()  # DDP"

    def predict(self, xb: torch.Tensor) -> torch.Tensor:
        return self.inner.predict(xb)

    def loss(self, preds: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        if len(yb) == 0:
            return preds.sum() * 0.0  # () zero, still on the graph of every parameter
        return self.inner.loss(preds, yb)

    def backward(self, loss: torch.Tensor) -> None:
        self.inner.backward(loss * self.batches.share)

    def describe(self) -> str:
        return (
            f"{self.inner.describe()} through DistributedDataParallel ({self.world_size} processes)"
        )


def place(model, batches: list, device, group: Group | None) -> torch.device:
    """Move the model and the data to the run's device once (the group's, else `device`;
    None leaves them where they are) and give each Batches this process's share."""
    if group is not None:
        device = group.device
    elif device is None:
        return next((p.device for p in model.parameters()), torch.device("cpu"))
    device = resolve_device(device)
    model.to(device)
    rank, world = (group.rank, group.world_size) if group is not None else (0, 1)
    for b in batches:
        if b is not None:
            b.place(device, rank, world)
    return device


def run_on(learner, group: Group | None) -> OneProcess:
    """The runner of a learner: one process, or the processes of `group`."""
    return OneProcess(learner) if group is None else ProcessGroupRun(learner, group)
