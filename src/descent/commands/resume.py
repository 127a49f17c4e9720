"""`descent resume RUN_DIR [--data PATH] [--epochs N | --steps N]`: continue a train or
fit run from its newest checkpoint, on the same data, to its configured end or, given a
new length, beyond it.

The folder is claimed (locked) first; the job is rebuilt from RUN_DIR/config.json,
every field checked; the data is checked against the fingerprint config.json holds
(`--data` points at data that moved, and is checked the same way); the newest intact
checkpoint of this run is loaded (callbacks/checkpointer.py says why the result equals
an uninterrupted run's).

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

from dataclasses import replace
from pathlib import Path

from rich.console import Console

from descent.commands.config import FitConfig, TrainConfig, check_options
from descent.commands.fit import FitCommandResult, fit_command
from descent.commands.runs import Continuation
from descent.commands.train import TrainResult, train_command
from descent.core.events import Callback
from descent.distributed.process import Process
from descent.errors import CheckpointError, ConfigError
from descent.io.checkpoints import ResumeFrom, latest_checkpoint
from descent.io.files import read_json
from descent.io.fingerprint import Fingerprint, check_same_data
from descent.io.rundir import RunDir
from descent.io.schemas import check_field_bounds, dataclass_fields, matches
from descent.options import check_bounds
from descent.watch.session import WatchSession

RUN_CONFIGS = {"train": TrainConfig, "fit": FitConfig}
_FINGERPRINT_FIELDS = {
    "bundled": {"kind": str, "source": str, "bytes": int, "sha256": str},
    "file": {"kind": str, "path": str, "bytes": int, "sha256": str},
    "folder": {"kind": str, "path": str, "files": int, "bytes": int, "sha256": str},
}

EXTENDABLE = (None, "max_epochs", "interrupted", "error")  # how a run may have ended
FIXED_LENGTH_SCHEDULES = ("one-cycle", "cosine")


def read_run_config(run_dir: Path) -> tuple[TrainConfig | FitConfig, str, dict]:
    """(the job's config, its run id, its data's fingerprint) from run_dir/config.json,
    every field checked: types from the config dataclass, bounds and choices from
    options.py (check_options), with messages naming the file and the field."""
    path = run_dir / "config.json"
    raw = read_json(path, "run configuration", max_bytes=16 * 2**20)
    if not isinstance(raw, dict) or str(raw.get("command")) not in RUN_CONFIGS:
        command = raw.get("command") if isinstance(raw, dict) else None
        raise CheckpointError(
            f"{path}: not the configuration of a train or fit run (field 'command' is "
            f"{command!r:.40})"
        )
    raw = dict(raw)
    cls = RUN_CONFIGS[raw.pop("command")]
    run_id, record = raw.pop("run_id", None), raw.pop("fingerprint", None)
    if not isinstance(run_id, str):
        raise CheckpointError(f"{path}: field 'run_id' is missing or not a string")
    kind = record.get("kind") if isinstance(record, dict) else None
    shape = _FINGERPRINT_FIELDS.get(kind) if isinstance(kind, str) else None
    if (
        shape is None
        or set(record) != set(shape)
        or not all(matches(record[k], t) for k, t in shape.items())
    ):
        raise CheckpointError(
            f"{path}: field 'fingerprint' is missing or damaged (kind, path or source, bytes, "
            "sha256); resume cannot check the data"
        )
    values = dataclass_fields(cls, raw, path)
    check_field_bounds(values, path)
    cfg = cls(**{**values, "out": str(run_dir)})
    try:
        check_options(cfg)
    except ConfigError as e:
        raise CheckpointError(f"{path}: {e}") from None
    return cfg, run_id, record


def _data_manifest(run_dir: Path) -> list | None:
    """A folder's list of files, as the run wrote it (.descent/data.json); None if absent."""
    path = run_dir / ".descent" / "data.json"
    if not path.exists():
        return None
    manifest = read_json(path, "data manifest")
    if not matches(manifest, list[list]) or not all(
        len(e) == 3 and matches(e[0], str) and matches(e[1], int) and matches(e[2], str)
        for e in manifest
    ):
        raise CheckpointError(f"{path}: not a list of [name, size, sha256]; it was edited")
    return manifest


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
    check_bounds(option.lstrip("-"), length)
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


def check_resumable(cfg: TrainConfig | FitConfig, run: Path) -> None:
    """Refuse the runs that have no loop to continue, saying why and what to do instead:
    `fit --by` (every group fitted at once, no checkpoints) and `train --model mean`
    (the mean images in one pass, nothing stepped)."""
    if isinstance(cfg, FitConfig) and cfg.by is not None:
        raise ConfigError(
            f"{run} is a `descent fit --by {cfg.by}` run: every group is fitted at once, in "
            "one go, and no checkpoint is written, so there is nothing to resume or extend; "
            "fit again (--overwrite replaces this run), with --epochs for more steps"
        )
    if isinstance(cfg, TrainConfig) and cfg.model == "mean":
        raise ConfigError(
            f"{run} is a `descent train --model mean` run: the class means are computed in "
            "one pass and nothing is trained, so there is nothing to resume or extend"
        )


def resume_command(
    run_dir: str | Path,
    console: Console | None = None,
    quiet: bool = False,
    data: str | Path | None = None,
    *,
    epochs: int | None = None,
    steps: int | None = None,
    callbacks: list[Callback] | tuple[Callback, ...] = (),
    watch: WatchSession | None = None,
    device: str | None = None,
    threads: int | None = None,
) -> TrainResult | FitCommandResult:
    """Continue the run in `run_dir` from its newest checkpoint, to its configured end
    (or, with `epochs` or `steps`, to that new length); returns what `descent train` or
    `descent fit` would have returned. `data` is where the run's data is now, when it
    moved (checked against the run's fingerprint). `device` and `threads` replace the
    run's (a run written on a GPU resumes on a CPU: files are device-free)."""
    console = console or Console(highlight=False, soft_wrap=True)
    here = {k: v for k, v in (("device", device), ("threads", threads)) if v is not None}
    if not Process.from_env().is_main:  # torchrun's other processes: read, never lock or write
        return _resume_worker(Path(run_dir), data, epochs, steps, here)
    with RunDir.reopen(run_dir) as run:
        cfg, run_id, record = read_run_config(run.path)
        if run_id != run.run_id:
            raise CheckpointError(
                f"{run.path / 'config.json'}: belongs to run {run_id}, but the folder's run is "
                f"{run.run_id} (files of two runs are mixed here); start a new run"
            )
        check_resumable(cfg, run.path)
        manifest = _data_manifest(run.path)
        where = cfg.source if isinstance(cfg, TrainConfig) else cfg.data
        if data is not None:
            where = str(Path(data).expanduser().absolute())
        check_same_data(record, manifest, where)
        field = "source" if isinstance(cfg, TrainConfig) else "data"
        cfg = replace(cfg, quiet=quiet, **{field: where}, **here)
        found = latest_checkpoint(
            run.path, run_id, warn=lambda m: console.print(f"[yellow]warning:[/] {m}")
        )
        if epochs is not None or steps is not None:
            cfg, found = extend(cfg, found, epochs=epochs, steps=steps)
        if not quiet:
            to = f", to {epochs} epochs" if epochs else f", to {steps} steps" if steps else ""
            console.print(f"resuming {run.path} from {found.path.name} ({found.where()}){to}")
        going_on = Continuation(run, Fingerprint(record, manifest), found)
        if isinstance(cfg, TrainConfig):
            return train_command(cfg, console, resume=going_on, callbacks=callbacks, watch=watch)
        return fit_command(cfg, console, resume=going_on, callbacks=callbacks, watch=watch)


def _resume_worker(run_dir: Path, data, epochs, steps, here: dict) -> TrainResult:
    """A process of rank > 0 resuming under torchrun: the run's config and newest
    checkpoint read (rank 0 holds the folder's lock and writes nothing until every
    process has built its learner), then its share of the training."""
    cfg, run_id, _record = read_run_config(run_dir)
    if not isinstance(cfg, TrainConfig):
        raise ConfigError("only descent train runs on several processes")
    if data is not None:
        cfg = replace(cfg, source=str(Path(data).expanduser().absolute()))
    found = latest_checkpoint(run_dir, run_id)
    if epochs is not None or steps is not None:
        cfg, found = extend(cfg, found, epochs=epochs, steps=steps)
    return train_command(replace(cfg, quiet=True, **here), resume=Continuation(None, None, found))
