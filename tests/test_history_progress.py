"""History files and the epoch table."""

import io
import math

import torch
from rich.console import Console

from descent.core.history import History
from descent.core.learner import Learner
from descent.core.progress import ProgressDisplay
from descent.data.batches import Batches
from descent.data.synthetic import quadratic
from descent.io.rundir import RunDir
from descent.models.function import FunctionModel


def test_history_csv_round_trips_floats_exactly(tmp_path):
    h = History()
    h.append({"epoch": 1, "train_loss": 0.1 + 0.2, "valid_loss": math.nan, "time": 0.5})
    h.append({"epoch": 2, "train_loss": 1e-300, "valid_loss": 3.0, "time": 0.25})
    with RunDir.create(tmp_path / "run", "test") as run:
        path = run.write_metrics(h)
    lines = path.read_text().splitlines()
    assert lines[0] == "epoch,train_loss,valid_loss,time"
    assert float(lines[1].split(",")[1]) == 0.1 + 0.2 and float(lines[2].split(",")[1]) == 1e-300
    assert h.to_records()[0]["valid_loss"] is None  # JSON has no NaN


def _fit_with_display(epochs, min_interval):
    buf = io.StringIO()
    t = torch.arange(20.0)
    speed = 0.75 * (t - 9.5) ** 2 + 1
    model = FunctionModel(quadratic, "abc", [0.0, 0.0, 0.0])
    display = ProgressDisplay(Console(file=buf, width=120), min_interval=min_interval)
    Learner(model, Batches(t, speed), lr=1e-5, callbacks=[display]).fit(epochs)
    return buf.getvalue().splitlines()


def test_table_prints_every_epoch_when_slow_enough():
    lines = _fit_with_display(5, min_interval=0.0)
    assert lines[0].split() == ["epoch", "train_loss", "time"]
    assert [int(line.split()[0]) for line in lines[1:6]] == [1, 2, 3, 4, 5]
    assert lines[-1].startswith("stopped: max_epochs")


def test_table_rate_is_bounded_on_fast_epochs():
    lines = _fit_with_display(2000, min_interval=3600.0)
    rows = [line for line in lines[1:] if line.strip() and line.split()[0].isdigit()]
    # the first, the last and the powers of two only
    assert [int(r.split()[0]) for r in rows] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2000]


def test_a_bar_appears_on_long_work_on_a_terminal():
    import time

    from descent.core.events import Callback

    class Slow(Callback):
        order = 60  # after the display's after_batch

        def after_batch(self):
            time.sleep(0.03)
            seen.append(display.bar is not None)

    seen: list[bool] = []
    t = torch.arange(20.0)
    model = FunctionModel(quadratic, "abc", [0.0, 0.0, 0.0])
    console = Console(file=io.StringIO(), width=120, force_terminal=True)
    display = ProgressDisplay(console, bar_after=0.05)
    Learner(model, Batches(t, 0.75 * t**2, 2), lr=1e-5, callbacks=[display, Slow()]).fit(1)
    assert not seen[0] and seen[-1] and display.bar is None  # shown, then stopped
