"""`descent resume RUN_DIR [--data PATH]`: continue a train or fit run from its newest
checkpoint, on the same data.

The folder is claimed (locked) first; the job is rebuilt from RUN_DIR/config.json,
every field checked; the data is checked against the fingerprint config.json holds
(`--data` points at data that moved, and is checked the same way); the newest intact
checkpoint of this run is loaded (callbacks/checkpointer.py says why the result equals
an uninterrupted run's).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rich.console import Console

from descent.commands.config import FitConfig, TrainConfig, check_options
from descent.commands.fit import FitCommandResult, fit_command
from descent.commands.runs import Continuation
from descent.commands.train import TrainResult, train_command
from descent.errors import CheckpointError, ConfigError
from descent.io.checkpoints import latest_checkpoint
from descent.io.files import read_json
from descent.io.fingerprint import Fingerprint, check_same_data
from descent.io.rundir import RunDir
from descent.io.schemas import check_field_bounds, dataclass_fields, matches

RUN_CONFIGS = {"train": TrainConfig, "fit": FitConfig}
_FINGERPRINT_FIELDS = {
    "bundled": {"kind": str, "source": str, "bytes": int, "sha256": str},
    "file": {"kind": str, "path": str, "bytes": int, "sha256": str},
    "folder": {"kind": str, "path": str, "files": int, "bytes": int, "sha256": str},
}


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


def resume_command(
    run_dir: str | Path,
    console: Console | None = None,
    quiet: bool = False,
    data: str | Path | None = None,
) -> TrainResult | FitCommandResult:
    """Continue the run in `run_dir` from its newest checkpoint, to its configured end;
    returns what `descent train` or `descent fit` would have returned. `data` is where
    the run's data is now, when it moved (checked against the run's fingerprint)."""
    console = console or Console(highlight=False, soft_wrap=True)
    with RunDir.reopen(run_dir) as run:
        cfg, run_id, record = read_run_config(run.path)
        if run_id != run.run_id:
            raise CheckpointError(
                f"{run.path / 'config.json'}: belongs to run {run_id}, but the folder's run is "
                f"{run.run_id} (files of two runs are mixed here); start a new run"
            )
        manifest = _data_manifest(run.path)
        where = cfg.source if isinstance(cfg, TrainConfig) else cfg.data
        if data is not None:
            where = str(Path(data).expanduser().absolute())
        check_same_data(record, manifest, where)
        field = "source" if isinstance(cfg, TrainConfig) else "data"
        cfg = replace(cfg, quiet=quiet, **{field: where})
        found = latest_checkpoint(
            run.path, run_id, warn=lambda m: console.print(f"[yellow]warning:[/] {m}")
        )
        if not quiet:
            console.print(f"resuming {run.path} from {found.path.name} ({found.where()})")
        going_on = Continuation(run, Fingerprint(record, manifest), found)
        if isinstance(cfg, TrainConfig):
            return train_command(cfg, console, resume=going_on)
        return fit_command(cfg, console, resume=going_on)
