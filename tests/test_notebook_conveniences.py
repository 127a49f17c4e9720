"""What a notebook user reaches for: plot_losses / plot_metric of a learner or its result,
and the epoch table as one display (the kernel test is tests/test_chapter4_notebook.py);
in a terminal or a script the table never imports IPython."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import descent
from descent import Batches, Learner, PixelClassifier
from descent.core.notebook_table import EpochTable, in_notebook
from descent.errors import ConfigError


@pytest.fixture(scope="module")
def learn():
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (24, 4, 4), dtype=torch.uint8, generator=gen)
    y = torch.arange(24) % 2
    learner = Learner(PixelClassifier(16, 1), Batches(x, y, 8), Batches(x, y, 24), loss="bce",
                      optimizer="adam", lr=1e-2, metrics=["accuracy"], progress=False)  # fmt: skip
    learner.result = learner.fit(4)
    return learner


def _lines(fig):
    return [line.get_ydata().tolist() for line in fig.axes[0].get_lines()]


def test_plot_losses_takes_a_learner_its_result_or_a_history(learn):
    expected = _lines(descent.plot_losses(learn.history))
    assert len(expected) == 2 and expected[0] == learn.history.column("train_loss")
    assert _lines(descent.plot_losses(learn)) == expected
    assert _lines(descent.plot_losses(learn.result)) == expected
    assert descent.plot_losses(learn)._repr_png_()[:4] == b"\x89PNG"


def test_plot_metric_by_short_name(learn):
    fig = descent.plot_metric(learn, "accuracy")
    assert _lines(fig) == [learn.history.column("valid_accuracy")]
    assert fig.axes[0].get_ylabel() == "valid_accuracy"
    assert _lines(descent.plot_metric(learn)) == _lines(fig)  # valid_accuracy by default
    with pytest.raises(ConfigError, match="no column 'r2'; the history has epoch, train_loss"):
        descent.plot_metric(learn, "r2")
    with pytest.raises(ConfigError, match="not a list"):
        descent.plot_losses([1, 2])


def test_the_table_as_html_and_text():
    table = EpochTable()
    table.header, table.rows, table.footer = ["epoch", "loss"], [["1", "0.5"]], "stopped: <x>"
    assert "<td>0.5</td>" in table._repr_html_() and "stopped: &lt;x&gt;" in table._repr_html_()
    assert repr(table).splitlines()[-1] == "stopped: <x>"
    assert not in_notebook()  # pytest is no Jupyter kernel


def test_a_script_fit_prints_lines_and_imports_no_ipython():
    code = (
        "import sys, torch\n"
        "from descent import Batches, Learner, PixelClassifier\n"
        "x = torch.zeros(8, 2, 2, dtype=torch.uint8); y = torch.arange(8) % 2\n"
        "Learner(PixelClassifier(4, 1), Batches(x, y, 4), loss='bce').fit(2)\n"
        "assert 'IPython' not in sys.modules, 'IPython was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].split() == ["epoch", "train_loss", "time"]
    assert "stopped: max_epochs" in proc.stdout
