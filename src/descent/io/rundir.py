"""A run's folder: config.json, metrics.csv, plots/, model and checkpoint files.

A run can be repeated, resumed and reported from its folder alone.
"""

from __future__ import annotations

import time
from pathlib import Path

from descent.core.history import History
from descent.errors import CheckpointError
from descent.io.files import atomic_write_text, write_json


def default_run_dir(command: str) -> str:
    """Where a run goes without --out: runs/<command>-<YYYYmmdd-HHMMSS>."""
    return f"runs/{command}-{time.strftime('%Y%m%d-%H%M%S')}"


class RunDir:
    """A run's folder: config.json, metrics.csv, plots/, model and checkpoint files.

    A run can be repeated, resumed and reported from this folder alone."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise CheckpointError(
                f"{self.path} exists and is not a directory: choose another --out"
            )
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CheckpointError(
                f"{self.path}: cannot create the run directory: {e.strerror}"
            ) from None

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    def listing(self, first: tuple[str, ...] = ("config.json", "metrics.csv")) -> str:
        """What the folder holds, for a summary line: `first` (those present) in that
        order, then the other files by name, then the subfolders but plots/ (with a
        slash). Listed from the disk, so the line is true whatever the run wrote."""
        entries = sorted(self.path.iterdir(), key=lambda e: e.name)
        files = [e.name for e in entries if e.is_file() and not e.name.startswith(".")]
        dirs = [e.name + "/" for e in entries if e.is_dir() and e.name != "plots"]
        ordered = [n for n in first if n in files] + [n for n in files if n not in first]
        return " ".join(ordered + dirs)

    def plot_listing(self, made: list[Path]) -> str:
        """The plots of this run, those in `made` first (in the order made), then any
        others in plots/ (the learning-rate finder's, say); "" when there are none."""
        names = [q.name for q in made]
        if self.plots.is_dir():
            others = (q.name for q in self.plots.iterdir() if q.is_file())
            names += sorted(n for n in others if n not in names)
        return " ".join(names)

    def write_metrics(self, history: History, name: str = "metrics.csv") -> Path:
        """The per-epoch records as CSV (one row per epoch)."""
        atomic_write_text(self.file(name), history.to_csv())
        return self.file(name)

    def write_config(self, config: dict) -> Path:
        write_json(self.file("config.json"), config)
        return self.file("config.json")

    def __str__(self) -> str:
        return str(self.path)
