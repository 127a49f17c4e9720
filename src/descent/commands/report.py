"""`descent report RUN_DIR`: (re)write report.html of a train or fit run from its folder."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from descent.errors import CheckpointError
from descent.io.files import check_writable
from descent.report.html import write_run_report


def report_command(
    run_dir: str | Path, out: str | Path | None = None, console: Console | None = None
) -> Path:
    """Write report.html for the run in `run_dir` (to `out`, default run_dir/report.html)
    from its files alone; returns its path. Train and fit runs write it when they end:
    this redoes it, e.g. for a run that was stopped or is still going."""
    console = console or Console(highlight=False, soft_wrap=True)
    folder = Path(run_dir)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such run directory")
    if out is not None:
        check_writable(out, "--out")  # before the run's files are read
    path = write_run_report(folder, out)
    console.print(f"report: {path} (one file, opens offline)")
    return path
