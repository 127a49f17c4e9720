"""`descent resume RUN_DIR [--epochs N | --steps N]`: continue a train or fit run from
its newest checkpoint, to its configured end or, given a new length, beyond it.

The job is rebuilt from RUN_DIR/config.json and the newest intact checkpoint is
loaded (callbacks/checkpointer.py says why the result equals an uninterrupted run's).

Extending (`--epochs N` / `--steps N`): a run that ran its length, or was stopped
(Ctrl-C, SIGTERM, the page's Stop), goes on to the new length; config.json then
records it. The history continues, and at a constant rate the result equals one run
of that length from the start (tests/test_resume_extend.py): the checkpoint holds the
parameters training reached (also where early stopping had restored the best ones),
the optimizer's state, the stop rules' and the RNGs'. Schedules, as a fastai or
Lightning user would expect of them:

- constant: continues at its rate;
- step: continues its staircase (/10 every third of the *original* length);
- plateau: goes on watching valid_loss;
- one-cycle, cosine: refused. They are defined over the run's original length and
  end at a rate near 0 (lr/2.5e6, 0), so more epochs would not train; fastai starts a
  new cycle with a new `fit_one_cycle`: here, a new run.

A run that ended by a stop rule (early stopping, convergence, divergence, a target or
time budget) is refused too: the rule would end it again at once.
"""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

from rich.console import Console

from descent.commands.config import FitConfig, TrainConfig
from descent.commands.fit import FitCommandResult, fit_command
from descent.commands.train import TrainResult, train_command
from descent.core.events import Callback
from descent.errors import CheckpointError, ConfigError
from descent.io.checkpoints import ResumeFrom, latest_checkpoint
from descent.io.files import read_json
from descent.options import check_at_least
from descent.watch.session import WatchSession

RUN_CONFIGS = {"train": TrainConfig, "fit": FitConfig}
EXTENDABLE = (None, "max_epochs", "interrupted", "error")  # how a run may have ended
FIXED_LENGTH_SCHEDULES = ("one-cycle", "cosine")


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


def extend(
    cfg: TrainConfig | FitConfig,
    found: ResumeFrom,
    *,
    epochs: int | None = None,
    steps: int | None = None,
) -> tuple[TrainConfig | FitConfig, ResumeFrom]:
    """The config and checkpoint of a run made `epochs` epochs (or `steps` steps)
    long; a ConfigError says why a run cannot be extended (see the module text)."""
    if (epochs is None) == (steps is None):
        raise ConfigError("give the new length with --epochs N or --steps N (one of them)")
    option, length = ("--epochs", epochs) if epochs is not None else ("--steps", steps)
    check_at_least(option.lstrip("-"), length)
    state, run = found.state, Path(cfg.out or ".")
    stopped = state.get("stopped")
    if stopped not in EXTENDABLE:
        raise ConfigError(
            f"{run} ended by {stopped} ({state.get('stop_message', '')}); that rule would "
            "end it again at once, so it is not extended: start a new run (e.g. with "
            "--patience 0) or resume one that ran its length or was stopped"
        )
    done = state["steps"] if steps is not None else state["epochs_done"]
    if length <= done:
        unit = "steps" if steps is not None else "epochs"
        raise ConfigError(f"{option} {length}: {run} has already run {done} {unit}; give more")
    if cfg.schedule in FIXED_LENGTH_SCHEDULES:
        raise ConfigError(
            f"{run} uses --schedule {cfg.schedule}, which is defined over the run's original "
            "length and ends at a rate near 0, so more epochs would not train: start a new "
            f"run of the length you want ({option} {length}), as fastai's fit_one_cycle "
            "starts a new cycle"
        )
    if isinstance(cfg, TrainConfig):
        cfg = replace(cfg, epochs=epochs, steps=None) if epochs else replace(cfg, steps=steps)
    else:
        cfg = replace(cfg, epochs=length)  # a fit takes one step per epoch
    if stopped == "max_epochs":  # the old bound: the run goes on to the new one
        found = ResumeFrom({**state, "stopped": None, "stop_message": ""}, found.path)
    return cfg, found


def resume_command(
    run_dir: str | Path,
    console: Console | None = None,
    quiet: bool = False,
    *,
    epochs: int | None = None,
    steps: int | None = None,
    callbacks: list[Callback] | tuple[Callback, ...] = (),
    watch: WatchSession | None = None,
) -> TrainResult | FitCommandResult:
    """Continue the run in `run_dir` from its newest checkpoint, to its configured end
    (or, with `epochs` or `steps`, to that new length); returns what `descent train`
    or `descent fit` would have returned."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: no such run directory")
    console = console or Console(highlight=False, soft_wrap=True)
    cfg = replace(config_from(run_dir), quiet=quiet)
    found = latest_checkpoint(run_dir, warn=lambda m: console.print(f"[yellow]warning:[/] {m}"))
    if epochs is not None or steps is not None:
        cfg, found = extend(cfg, found, epochs=epochs, steps=steps)
    if not quiet:
        to = f", to {epochs} epochs" if epochs else f", to {steps} steps" if steps else ""
        console.print(f"resuming {run_dir} from {found.path.name} ({found.where()}){to}")
    if isinstance(cfg, TrainConfig):
        return train_command(cfg, console, resume=found, callbacks=callbacks, watch=watch)
    return fit_command(cfg, console, resume=found, callbacks=callbacks, watch=watch)
