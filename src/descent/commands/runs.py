"""What `descent train` and `descent fit` share around their run folder: the checks
before any work, the folder's claim with the run's id and its data's fingerprint in
config.json, the summary, and the finishing phase.

    check_outputs(cfg, overwrite)         # --out, --json (and --animate): before any work
    cfg = with_absolute_paths(cfg)        # config.json names data and outputs absolutely
    run, cfg = start_run(cfg, "train", cfg.source, overwrite=overwrite)
    with Finishing() as finish:           # a signal after training: the run still completes
        ...
        plots = finish.draw(make_plots)   # cut short by a signal; the summary is written first

`Continuation` is what `descent resume` hands in instead: the folder it has claimed, the
fingerprint it has checked and the checkpoint to continue from.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from descent.commands.config import FitConfig, TrainConfig
from descent.errors import ConfigError
from descent.io.checkpoints import ResumeFrom
from descent.io.files import check_writable, write_json
from descent.io.fingerprint import BUNDLED, Fingerprint, fingerprint
from descent.io.rundir import RunDir, check_out, default_run_dir

Config = TypeVar("Config", TrainConfig, FitConfig)


@dataclass
class Continuation:
    """A run that `descent resume` continues: its claimed (locked) folder, its data's
    fingerprint (already checked against the data) and the checkpoint to load."""

    run: RunDir
    data: Fingerprint
    checkpoint: ResumeFrom


def check_outputs(
    cfg: TrainConfig | FitConfig, overwrite: bool = False, *, resuming: bool = False
) -> None:
    """Refuse outputs that cannot be written before any data is read: --out (writable,
    free, empty or a descent run to --overwrite; not when `resuming`, whose folder is
    claimed already), --json, and fit's --animate."""
    if cfg.out is not None and not resuming:
        check_out(cfg.out, overwrite)
    data = cfg.data if isinstance(cfg, FitConfig) else cfg.source
    if cfg.json is not None:
        check_writable(cfg.json, "--json")
        check_outside_run(cfg.json, "--json", cfg.out)
        check_not_input(cfg.json, "--json", data)
    if isinstance(cfg, FitConfig) and cfg.animate is not None:
        if Path(cfg.animate).suffix.lower() != ".gif":
            raise ConfigError(
                f"--animate {cfg.animate}: the animation is written as GIF; name it *.gif"
            )
        check_writable(cfg.animate, "--animate")
        check_outside_run(cfg.animate, "--animate", cfg.out)
        check_not_input(cfg.animate, "--animate", data)


def check_not_input(path: str, option: str, data: str | None) -> None:
    """Refuse an output that is the run's own data file (or lies in its data folder)."""
    if data is None:
        return
    if _at_or_inside(Path(path).expanduser().resolve(), Path(data).expanduser().resolve()):
        raise ConfigError(
            f"{option} {path}: that is the run's data ({data}); writing there would replace "
            "it: give another file name"
        )


def check_outside_run(path: str, option: str, out: str | None) -> None:
    """Refuse an extra output (--json, --animate, --tensorboard) that is the run folder
    --out or lies inside it: the folder holds only the run's own files (a file of the
    same name would be overwritten, and a new run into a non-empty folder is refused)."""
    if out is None:
        return
    if _at_or_inside(Path(path).expanduser().absolute(), Path(out).expanduser().absolute()):
        raise ConfigError(
            f"{option} {path}: inside the run folder {out}, which holds only the run's own "
            "files; give a path outside it"
        )


def _at_or_inside(target: Path, place: Path) -> bool:
    return target == place or place in target.parents


def with_absolute_paths(cfg: Config) -> Config:
    """cfg with its data and output paths absolute, so that config.json means the same
    files from any working directory (a resume runs from anywhere)."""

    def absolute(path: str | None) -> str | None:
        return None if path is None else str(Path(path).expanduser().absolute())

    changes: dict = {"json": absolute(cfg.json)}
    if isinstance(cfg, TrainConfig):
        changes["source"] = cfg.source if cfg.source == BUNDLED else absolute(cfg.source)
    else:
        changes.update(data=absolute(cfg.data), animate=absolute(cfg.animate))
    return replace(cfg, **changes)


def start_run(
    cfg: Config,
    command: str,
    source: str,
    *,
    overwrite: bool = False,
    continuation: Continuation | None = None,
    warn: Callable[[str], None] | None = None,
) -> tuple[RunDir, Config]:
    """Claim the run folder (or take the one `continuation` holds) and write config.json:
    the options, the run's id and the data's fingerprint (a folder's list of files goes
    to .descent/data.json). Returns the folder and cfg naming it as `out`."""
    if continuation is None:
        run = RunDir.create(cfg.out or default_run_dir(command), command, overwrite=overwrite,
                            warn=warn)  # fmt: skip
        data = None
    else:
        run, data = continuation.run, continuation.data
    try:
        cfg = replace(cfg, out=str(run.path.absolute()))  # config.json names its own folder
        data = data or fingerprint(source)
        if data.manifest is not None:
            write_json(run.file(".descent/data.json"), data.manifest)
        run.write_config({**cfg.to_dict(), "run_id": run.run_id, "fingerprint": data.record})
    except BaseException:
        if continuation is None:
            run.close()
        raise
    return run, cfg


def write_summary(run: RunDir, summary: dict, json_path: str | None) -> None:
    """summary.json (with the run's id) in the run folder, and the --json copy."""
    summary = {**summary, "run_id": run.run_id}
    write_json(run.file("summary.json"), summary)
    if json_path:
        write_json(json_path, summary)


class PlotsStopped(BaseException):
    """Raised by Finishing's signal handler to cut the plots short (a BaseException, so
    that no `except Exception` in a plotting library swallows it)."""


class NotedSignals:
    """SIGINT and SIGTERM noted in `signal` ("SIGINT", "SIGTERM") while the `with` block
    runs, instead of ending the process; the previous handlers come back after it.
    Installed from the main thread only (Python's rule); `_handle` says what else a
    signal does."""

    def __init__(self) -> None:
        self.signal: str | None = None
        self._old: dict[int, object] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}

    def _handle(self, signum: int, frame: object) -> None:
        self.signal = signal.Signals(signum).name


class Finishing(NotedSignals):
    """SIGINT and SIGTERM after training, while the run writes its files and plots.

    Installed before the fit (the learner's InterruptHandler takes the signals during
    the fit and gives them back after it), it notes a signal instead of dying: the
    model, metrics and summary are then still written, plots are skipped or cut short
    (`draw`), and `signal` says which one came, for the command's exit status."""

    def __init__(self) -> None:
        super().__init__()
        self._cutting = False

    def _handle(self, signum: int, frame: object) -> None:
        super()._handle(signum, frame)
        if self._cutting:
            raise PlotsStopped

    def draw(self, make: Callable[[], list[Path]]) -> list[Path]:
        """make() -> the plots written; nothing when a signal came already, and what
        was made until then (on the disk) when one comes while it draws."""
        if self.signal is not None:
            return []
        self._cutting = True
        try:
            return make()
        except PlotsStopped:
            return []
        finally:
            self._cutting = False

    def note(self) -> str:
        """What to print when a signal came while finishing."""
        return (
            f"interrupted by {self.signal} while writing the run's files: the run is complete "
            "(model, metrics and summary are written); plots not drawn by then are missing"
        )
