"""descent's figures show inline in a fresh Jupyter kernel with no %matplotlib line.

One notebook, executed with nbclient in a kernel of this interpreter: every figure
function ends a cell, and each of those cells must have produced an image/png output.
"""

from __future__ import annotations

import sys

import nbformat
from nbclient import NotebookClient

SETUP = """\
import sys
import torch
from descent import Batches, Learner, grad, lr_find, lr_sweep
from descent.report.gradients import plot_gradient
from descent.core.history import History
from descent.models import FormulaModel, PixelClassifier
from descent.report.plots import (plot_confusion, plot_fit, plot_image_grid, plot_losses,
    plot_lr_find, plot_metric, plot_prediction_grid, plot_schedule, plot_sweep,
    plot_weight_images)
history = History([{"epoch": e, "train_loss": 1 / e, "valid_loss": 1.2 / e,
                    "valid_accuracy": 1 - 0.5 / e} for e in range(1, 6)])
t = torch.linspace(0, 1, 20, dtype=torch.float64)
y = 2 * t + 1
gen = torch.Generator().manual_seed(0)
images = torch.randint(0, 256, (6, 8, 8), dtype=torch.uint8, generator=gen)
labels = torch.arange(6) % 2
def learner():
    return Learner(PixelClassifier(64, 1), Batches(images, labels, 3), Batches(images, labels, 6),
                   loss="bce", optimizer="adam", lr=1e-2, progress=False)
print(sys.executable)
"""

FIGURES = {
    "plot_losses": "plot_losses(history)",
    "plot_metric": 'plot_metric(history, "valid_accuracy")',
    "plot_fit": "plot_fit(t, y, t, 2 * t + 1, residuals=y - (2 * t + 1))",
    "plot_prediction_grid": "plot_prediction_grid(t, y, [(0, 0 * t), (5, y)])",
    "plot_weight_images": 'plot_weight_images(torch.randn(2, 64), (8, 8), ["a", "b"])',
    "plot_confusion": 'plot_confusion(torch.tensor([[3, 1], [0, 2]]), ["3", "7"])',
    "plot_image_grid": 'plot_image_grid(images, [str(i) for i in range(6)], "digits")',
    "plot_gradient": 'plot_gradient(grad("x**2", x=3))',
    "plot_lr_find": "plot_lr_find(lr_find(learner(), steps=20))",
    "plot_schedule": "plot_schedule([0.1, 0.2, 0.3, 0.2, 0.1])",
    "plot_sweep": (
        "plot_sweep(lr_sweep(PixelClassifier(64, 1), Batches(images, labels, 3), None, "
        'loss="bce", lrs=[0.01, 0.1], epochs=2))'
    ),
}


def test_every_figure_shows_as_png_in_a_fresh_kernel(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(SETUP)]
    nb.cells += [nbformat.v4.new_code_cell(code) for code in FIGURES.values()]
    assert not any("%matplotlib" in c.source for c in nb.cells)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()  # raises CellExecutionError on any error
    printed = "".join(o.get("text", "") for o in nb.cells[0].outputs)
    assert printed.strip() == sys.executable  # the kernel runs this environment
    for name, cell in zip(FIGURES, nb.cells[1:], strict=True):
        kinds = [list(o.get("data", {})) for o in cell.outputs]
        pngs = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        assert len(pngs) == 1, f"{name}: outputs {kinds}"
        assert pngs[0]["data"]["image/png"]  # base64 PNG, not empty
