"""Progress bars and the epoch table, printed at a bounded rate.

The table has one row per epoch (epoch, train_loss, valid_loss, metrics, time);
when epochs are quicker than `min_interval`, rows are sampled so the terminal
never becomes the bottleneck: the first and last epochs and the powers of two
are always shown.
A progress bar appears only on long work (after `bar_after` seconds) and only
on a terminal. In a Jupyter notebook the table is one output updated in place
(notebook_table.py).
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from rich.console import Console

from descent.core.events import Callback
from descent.core.notebook_table import NotebookTable, in_notebook

if TYPE_CHECKING:
    from rich.progress import Progress


def format_value(v: float) -> str:
    if isinstance(v, int):
        return str(v)
    if math.isnan(v):
        return "nan"
    return f"{v:.6g}"


class ProgressDisplay(Callback):
    """Prints the epoch table and shows a progress bar on long work.

    `notebook`: show the table as one output updated in place; None (the default) does so
    inside a Jupyter kernel unless a console is given."""

    order = 50

    def __init__(
        self,
        console: Console | None = None,
        min_interval: float = 0.2,
        bar_after: float = 1.0,
        notebook: bool | None = None,
    ) -> None:
        self.notebook = notebook if notebook is not None else console is None and in_notebook()
        self.console = console or Console(highlight=False)
        self.min_interval, self.bar_after = min_interval, bar_after
        self.bar: Progress | None = None
        self.table: NotebookTable | None = None

    def before_fit(self) -> None:
        now = time.perf_counter()
        self.t0 = self._last_row = self._last_bar = now
        self._header: list[str] | None = None
        self._printed_epoch = 0
        self._done = 0
        self.table = NotebookTable(self.min_interval) if self.notebook else None
        self._total = max(self.learner.n_epochs - self.learner.epoch, 0) * len(
            self.learner.train_batches
        )

    def after_batch(self) -> None:
        if not self.learner.training:
            return
        self._done += 1
        now = time.perf_counter()
        if now - self._last_bar < 0.1:
            return
        self._last_bar = now
        if self.bar is None and now - self.t0 > self.bar_after and self.console.is_terminal:
            # imported here: most runs never show a bar, and rich.progress costs ~10 ms
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("epoch {task.fields[epoch]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
                refresh_per_second=5,
            )
            self.bar.start()
            self._task = self.bar.add_task("fit", total=self._total, epoch=1)
        if self.bar is not None:
            self.bar.update(self._task, completed=self._done, epoch=self.learner.epoch + 1)

    def after_epoch(self) -> None:
        rec = self.learner.record
        now = time.perf_counter()
        first = self._header is None
        e = rec["epoch"]
        landmark = first or e >= self.learner.n_epochs or (e & (e - 1)) == 0  # powers of two
        if landmark or now - self._last_row >= self.min_interval:
            self._print_row(rec)
            self._last_row = now

    def _print_row(self, rec: dict) -> None:
        if self._header is None:
            self._header = list(rec)
            if self.table is None:
                self.console.out("  ".join(f"{k:>12}" for k in self._header), highlight=False)
        self._printed_epoch = rec["epoch"]
        cells = []
        for k in self._header:
            v = rec.get(k, math.nan)
            cells.append(f"{v:>11.3f}s" if k == "time" else f"{format_value(v):>12}")
        if self.table is not None:
            self.table.add(self._header, [c.strip() for c in cells])
        else:
            self.console.out("  ".join(cells), highlight=False)  # out(): 4x cheaper than print()

    def after_fit(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
        # Stop rules may end the fit in after_epoch before this callback saw the
        # epoch: the last record is printed here in any case.
        history = self.learner.history
        if len(history) and history[-1]["epoch"] != self._printed_epoch:
            self._print_row(history[-1])
        stopped = f"stopped: {self.learner.stopped} - {self.learner.stop_message}"
        if self.table is not None:
            self.table.finish(stopped)
        else:
            self.console.print(stopped, markup=False)
