"""save_figure's one-draw PNG path writes what matplotlib's savefig writes, byte for
byte, for every kind of figure descent draws; matplotlib is imported only when a
figure is made."""

import io
import subprocess
import sys

import pytest
import torch

from descent.core.history import History
from descent.report import plots as P


def _history():
    rows = [{"epoch": i, "train_loss": 90 / i, "valid_loss": 100 / i, "time": 0.1} for i in (1, 2)]
    rows += [{"epoch": i, "train_loss": 90 / i**3, "valid_loss": 100 / i**3, "time": 0.1}
             for i in range(3, 40)]  # fmt: skip
    for r in rows:
        r["valid_accuracy"] = 1 - 1 / (r["epoch"] + 1)
    return History(rows)


def _figures():
    """Each kind of figure descent saves, made afresh on every call."""
    g = torch.Generator().manual_seed(0)
    x = torch.arange(20.0)
    y = 0.75 * (x - 9.5) ** 2 + torch.randn(20, generator=g)
    grid = torch.linspace(0, 19, 400)
    curve = 0.75 * (grid - 9.5) ** 2
    weights = torch.randn(3, 784, generator=g)
    images = (torch.rand(7, 28, 28, generator=g) * 255).to(torch.uint8)
    return {
        "fit": lambda: P.plot_fit(x, y, grid, curve, residuals=y - 0.75 * (x - 9.5) ** 2,
                                  xlabel="time", ylabel="speed", title="speed = a*time**2"),
        "fit_steps": lambda: P.plot_prediction_grid(
            x, y, [(i, curve * i / 8) for i in range(9)], panels=6, curve_x=grid, label="step"),
        "loss": lambda: P.plot_losses(_history(), title="loss (MSE)"),
        "accuracy": lambda: P.plot_metric(_history(), "valid_accuracy", "validation accuracy"),
        "weights": lambda: P.plot_weight_images(weights, (28, 28), ["0", "1", "2"], "weights"),
        "weights_1": lambda: P.plot_weight_images(weights[:1], (28, 28), ["7 vs 3"], "w"),
        "confusion": lambda: P.plot_confusion(torch.tensor([[90, 3], [2, 80]]), ["3", "7"]),
        "mistakes": lambda: P.plot_image_grid(images, [f"t{i}" for i in range(7)], "most wrong"),
        "schedule": lambda: P.plot_schedule([0.01 * i for i in range(50)],
                                            [0.95 - 0.001 * i for i in range(50)]),
    }  # fmt: skip


@pytest.mark.parametrize("name", list(_figures()))
@pytest.mark.parametrize("dpi", [100, 150])
def test_save_figure_writes_the_bytes_savefig_writes(tmp_path, name, dpi):
    make = _figures()[name]
    buf = io.BytesIO()
    make().savefig(buf, format="png", dpi=dpi)
    fig = make()
    P.save_figure(fig, tmp_path / "f.png", dpi=dpi)
    assert (tmp_path / "f.png").read_bytes() == buf.getvalue()
    assert fig.dpi == 100  # the figure's own dpi is left as it was


def test_save_figure_writes_other_formats_through_savefig(tmp_path):
    P.save_figure(_figures()["loss"](), tmp_path / "loss.svg")
    assert b"<svg" in (tmp_path / "loss.svg").read_bytes()[:500]


def test_matplotlib_is_imported_by_the_first_figure_not_by_the_module():
    code = (
        "import sys; import descent.report.plots as P, descent.commands.fit, "
        "descent.commands.train; assert 'matplotlib' not in sys.modules, 'imported'; "
        "P.plot_schedule([1.0, 2.0]); assert 'matplotlib.pyplot' not in sys.modules"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_plot_metric_of_a_run_stopped_in_its_first_epoch_is_an_empty_chart():
    from descent.core.history import History
    from descent.errors import ConfigError
    from descent.report.plots import plot_metric

    fig = plot_metric(History(), "valid_accuracy", "validation accuracy")
    assert fig.axes[0].get_title() == "validation accuracy" and not fig.axes[0].lines
    with pytest.raises(ConfigError, match="no column 'valid_acc'"):
        plot_metric(History([{"epoch": 1, "train_loss": 1.0}]), "valid_acc")
