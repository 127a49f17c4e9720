"""Checkpoints during training, and `descent resume RUN_DIR`.

A run directory holds config.json (everything needed to rebuild the data, the
model and the learner) and checkpoints/ (the learner's state at moments of
training). Resuming rebuilds the job from config.json, loads the newest intact
checkpoint and continues: the result equals an uninterrupted run's bit for bit,
because the batch order depends only on (seed, epoch) and every other state
(parameters, optimizer, position within the epoch, the epoch's losses so far,
stop rules, RNGs) is in the checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

from rich.console import Console

from descent.checkpoint import (
    CheckpointError,
    checkpoint_name,
    list_checkpoints,
    load_checkpoint,
    load_state_into,
    read_json,
    save_checkpoint,
)
from descent.errors import ConfigError
from descent.events import Callback


def parse_every(text: str | int | None) -> tuple[int, str] | None:
    """'3' or 3 -> (3, 'epochs'); '200steps' -> (200, 'steps'); None, '0' -> None."""
    if text is None:
        return None
    raw = str(text).strip().lower()
    unit = "steps" if raw.endswith(("steps", "step")) else "epochs"
    number = raw.removesuffix("steps").removesuffix("step").removesuffix("epochs")
    try:
        n = int(number.removesuffix("epoch"))
    except ValueError:
        raise ConfigError(
            f"--checkpoint-every {text!r}: give a number of epochs (e.g. 1) or of steps "
            "(e.g. 200steps)"
        ) from None
    if n < 0:
        raise ConfigError(f"--checkpoint-every must be 0 (off) or more, got {n}")
    return None if n == 0 else (n, unit)


class Checkpointer(Callback):
    """Writes the learner's state to `folder`: every `every` epochs (or steps), at
    the batch boundary where an interrupt stopped training, and when the fit ends.
    Keeps the newest `keep` checkpoints and the one of the best epoch (lowest
    valid_loss, or train_loss without validation)."""

    order = 90  # after the stop rules and displays: it saves what they decided

    def __init__(self, folder: str | Path, every: tuple[int, str] | None = None, keep: int = 3):
        if keep < 1:
            raise ConfigError(f"--keep must be at least 1, got {keep}")
        self.folder, self.every, self.keep = Path(folder), every, keep
        self.best: tuple[float, str] | None = None  # (value, checkpoint name)
        self.last: Path | None = None

    def after_step(self) -> None:
        if self.every and self.every[1] == "steps" and self.learner.steps % self.every[0] == 0:
            self.save()

    def after_epoch(self) -> None:
        if (
            self.every
            and self.every[1] == "epochs"
            and len(self.learner.history) % self.every[0] == 0
        ):
            self.save()

    def after_fit(self) -> None:
        if self.learner.stopped != "error":
            self.save()

    def save(self) -> Path:
        learner = self.learner
        if learner.batches_done == 0 and learner.history.rows:
            rec = learner.history.rows[-1]
            value = rec.get("valid_loss", rec.get("train_loss", math.nan))
            if math.isfinite(value) and (self.best is None or value < self.best[0]):
                position = {"epochs_done": len(learner.history), "batches_done": 0}
                self.best = (value, checkpoint_name(position) + ".json")
        self.last = save_checkpoint(self.folder, learner.state_dict())
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
        self.best = tuple(state["best"]) if state.get("best") else None


def latest_state(run_dir: Path, console: Console) -> tuple[dict, Path]:
    """The newest checkpoint that loads; older ones are tried when a newer one is
    damaged (with a warning naming it)."""
    found = list_checkpoints(run_dir / "checkpoints")
    if not found:
        raise CheckpointError(
            f"{run_dir / 'checkpoints'}: no checkpoint to resume from (the run was stopped "
            "before it wrote one; train with --checkpoint-every 1 to write one every epoch)"
        )
    errors = []
    for path in reversed(found):
        try:
            state, _ = load_checkpoint(path)
            for message in errors:
                console.print(f"[yellow]warning:[/] skipped a damaged checkpoint: {message}")
            return state, path
        except CheckpointError as e:
            errors.append(str(e))
    raise CheckpointError("no checkpoint can be loaded:\n  " + "\n  ".join(errors))


def config_from(run_dir: Path):
    """The job's config dataclass from run_dir/config.json, checked field by field."""
    from descent.config import FitConfig, TrainConfig

    raw = read_json(run_dir / "config.json", "run configuration")
    kinds = {"train": TrainConfig, "fit": FitConfig}
    if not isinstance(raw, dict) or raw.get("command") not in kinds:
        raise CheckpointError(
            f"{run_dir / 'config.json'}: not the configuration of a train or fit run "
            f"(command {raw.get('command') if isinstance(raw, dict) else None!r})"
        )
    cls = kinds[raw.pop("command")]
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise CheckpointError(f"{run_dir / 'config.json'}: unknown options {unknown}")
    return cls(**{**raw, "out": str(run_dir)})


def load_learner_state(learner, state: dict, source: Path) -> None:
    """Put a checkpoint into a freshly built learner, refusing a mismatched model."""
    load_state_into(learner.model, state["model"], source)
    try:
        learner.load_state_dict(state)
    except (ValueError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"{source}: does not fit this run's learner: {e}") from None


def resume(run_dir: str | Path, console: Console | None = None, quiet: bool = False):
    """Continue the run in `run_dir` from its newest checkpoint, to its configured end;
    returns what `descent train` or `descent fit` would have returned."""
    from dataclasses import replace

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: no such run directory")
    console = console or Console(highlight=False, soft_wrap=True)
    cfg = replace(config_from(run_dir), quiet=quiet)
    state, path = latest_state(run_dir, console)
    where = f"after epoch {state['epochs_done']}" + (
        f", batch {state['batches_done']} of epoch {state['epochs_done'] + 1}"
        if state["batches_done"]
        else ""
    )
    if not quiet:
        console.print(f"resuming {run_dir} from {path.name} ({where})")
    if type(cfg).__name__ == "TrainConfig":
        from descent.train import run_train

        return run_train(cfg, console, resume=(state, path))
    from descent.fit_job import run_fit

    return run_fit(cfg, console, resume=(state, path))


def interrupted_note(run_dir, result, checkpointer: Checkpointer | None) -> str:
    where = checkpointer.last if checkpointer and checkpointer.last else None
    saved = f"checkpoint written to {where}; " if where else ""
    return f"{result.message}. {saved}resume with: descent resume {run_dir}"
