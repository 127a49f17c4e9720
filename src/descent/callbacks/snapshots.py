"""Snapshots of a model's predictions as training goes, for the grid of panels and
animations (report/plots.py draws them)."""

from __future__ import annotations

import torch

from descent.core.events import Callback


class PredictionSnapshots(Callback):
    """Records the model's predictions on `x` after chosen epochs (for the grid of
    panels and animations): every epoch up to `dense`, then at powers of two, and
    always the last one."""

    order = 60

    def __init__(self, x: torch.Tensor, dense: int = 4) -> None:
        self.x, self.dense = x, dense
        self.snapshots: list[tuple[int, torch.Tensor]] = []  # (epoch, preds (n,))

    def _take(self, epoch: int) -> None:
        was_training = self.learner.model.training
        self.learner.model.eval()
        with torch.no_grad():
            preds = self.learner.model(self.x).detach().cpu().clone()
        self.learner.model.train(was_training)
        if self.snapshots and self.snapshots[-1][0] == epoch:
            self.snapshots[-1] = (epoch, preds)
        else:
            self.snapshots.append((epoch, preds))

    def before_fit(self) -> None:
        if not self.snapshots:
            self._take(self.learner.epoch)

    def state_dict(self) -> dict:
        return {"snapshots": [list(s) for s in self.snapshots]}

    def load_state_dict(self, state: dict) -> None:
        snaps = state["snapshots"]
        if not isinstance(snaps, list) or not all(
            isinstance(s, list) and len(s) == 2 and type(s[0]) is int
            and isinstance(s[1], torch.Tensor) and s[1].shape == (len(self.x),)
            for s in snaps
        ):  # fmt: skip
            raise TypeError("snapshots must be a list of [step, predictions]")
        self.snapshots = [(e, p) for e, p in snaps]

    def after_epoch(self) -> None:
        e = int(self.learner.record["epoch"])
        if e <= self.dense or (e & (e - 1)) == 0:
            self._take(e)

    def after_fit(self) -> None:
        self._take(self.learner.epoch)
