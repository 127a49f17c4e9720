"""`descent resume RUN_DIR`: continue a train or fit run from its newest checkpoint.

The job is rebuilt from RUN_DIR/config.json and the newest intact checkpoint is
loaded (callbacks/checkpointer.py says why the result equals an uninterrupted run's).
"""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

from rich.console import Console

from descent.commands.config import FitConfig, TrainConfig
from descent.commands.fit import FitCommandResult, fit_command
from descent.commands.train import TrainResult, train_command
from descent.errors import CheckpointError
from descent.io.checkpoints import latest_checkpoint
from descent.io.files import read_json

RUN_CONFIGS = {"train": TrainConfig, "fit": FitConfig}


def config_from(run_dir: Path) -> TrainConfig | FitConfig:
    """The job's config dataclass from run_dir/config.json, checked field by field."""
    raw = read_json(run_dir / "config.json", "run configuration")
    if not isinstance(raw, dict) or raw.get("command") not in RUN_CONFIGS:
        raise CheckpointError(
            f"{run_dir / 'config.json'}: not the configuration of a train or fit run "
            f"(command {raw.get('command') if isinstance(raw, dict) else None!r})"
        )
    cls = RUN_CONFIGS[raw.pop("command")]
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise CheckpointError(f"{run_dir / 'config.json'}: unknown options {unknown}")
    return cls(**{**raw, "out": str(run_dir)})


def resume_command(
    run_dir: str | Path, console: Console | None = None, quiet: bool = False
) -> TrainResult | FitCommandResult:
    """Continue the run in `run_dir` from its newest checkpoint, to its configured end;
    returns what `descent train` or `descent fit` would have returned."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: no such run directory")
    console = console or Console(highlight=False, soft_wrap=True)
    cfg = replace(config_from(run_dir), quiet=quiet)
    found = latest_checkpoint(run_dir, warn=lambda m: console.print(f"[yellow]warning:[/] {m}"))
    if not quiet:
        console.print(f"resuming {run_dir} from {found.path.name} ({found.where()})")
    if isinstance(cfg, TrainConfig):
        return train_command(cfg, console, resume=found)
    return fit_command(cfg, console, resume=found)
