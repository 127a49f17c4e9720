"""Checkpoints during training: the learner's state at moments of a run.

A run directory holds config.json (everything needed to rebuild the data, the
model and the learner) and checkpoints/ (Learner.state_dict() at moments of
training, io/checkpoints.py). `descent resume` rebuilds the job from config.json,
loads the newest intact checkpoint and continues: the result equals an
uninterrupted run's bit for bit, because the batch order depends only on
(seed, epoch) and every other state (parameters, optimizer, position within the
epoch, the epoch's losses so far, stop rules, RNGs) is in the checkpoint.
"""

from __future__ import annotations

import math
from pathlib import Path

from descent.core.events import Callback, StopReason
from descent.io.checkpoints import checkpoint_name, list_checkpoints, save_checkpoint
from descent.options import Every, check_bounds


class Checkpointer(Callback):
    """Writes the learner's state to `folder`: every `every` epochs (or steps), at
    the batch boundary where an interrupt stopped training, and when the fit ends.
    Keeps the newest `keep` checkpoints and the one of the best epoch (lowest
    valid_loss, or train_loss without validation). `meta` (the run's id) goes into
    every checkpoint."""

    order = 90  # after the stop rules and displays: it saves what they decided

    def __init__(
        self,
        folder: str | Path,
        every: Every | None = None,
        keep: int = 3,
        meta: dict | None = None,
    ) -> None:
        check_bounds("keep", keep)
        self.folder, self.every, self.keep, self.meta = Path(folder), every, keep, meta or {}
        self.best: tuple[float, str] | None = None  # (value, checkpoint name)
        self.last: Path | None = None

    def after_step(self) -> None:
        every = self.every
        if every and every.unit == "steps" and self.learner.steps % every.n == 0:
            self.save()

    def after_epoch(self) -> None:
        every = self.every
        if every and every.unit == "epochs" and len(self.learner.history) % every.n == 0:
            self.save()

    def after_fit(self) -> None:
        if self.learner.stopped != StopReason.ERROR:
            self.save()

    def save(self) -> Path:
        learner = self.learner
        if learner.batches_done == 0 and learner.history.rows:
            rec = learner.history.rows[-1]
            value = rec.get("valid_loss", rec.get("train_loss", math.nan))
            if math.isfinite(value) and (self.best is None or value < self.best[0]):
                position = {"epochs_done": len(learner.history), "batches_done": 0}
                self.best = (value, checkpoint_name(position) + ".json")
        self.last = save_checkpoint(self.folder, learner.state_dict(), self.meta)
        self._prune()
        return self.last

    def _prune(self) -> None:
        found = list_checkpoints(self.folder)
        keep = {p.name for p in found[-self.keep :]}
        if self.best is not None:
            keep.add(self.best[1])
        for path in found:
            if path.name not in keep:
                path.unlink(missing_ok=True)
                path.with_suffix(".safetensors").unlink(missing_ok=True)

    def state_dict(self) -> dict:
        return {"best": list(self.best) if self.best else None}

    def load_state_dict(self, state: dict) -> None:
        best = state["best"]
        if not (best is None or isinstance(best, list) and len(best) == 2
                and isinstance(best[0], (int, float)) and isinstance(best[1], str)):  # fmt: skip
            raise TypeError("best must be null or [value, checkpoint name]")
        self.best = (float(best[0]), best[1]) if best else None

    def note(self, run_dir: object, message: str) -> str:
        """What to print after an interrupt: where the checkpoint is, how to resume."""
        saved = f"checkpoint written to {self.last}; " if self.last else ""
        return f"{message}. {saved}resume with: descent resume {run_dir}"
