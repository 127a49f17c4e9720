"""The book's picture of a gradient: the function along one variable, and the tangent
at the point, whose slope is the gradient. (A report-layer module: it draws what
gradients.grad computed.)"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from descent.core.gradients import Gradient
from descent.errors import ConfigError
from descent.report.figure import new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_PANELS = 6


def plot_gradient(
    g: Gradient, var: str | None = None, span: float | None = None, points: int = 201
) -> Figure:
    """The function `g` differentiated, along variable `var` (default: the first) with the
    others held at the point, over point ± span (default max(1, |value|)); the tangent
    line value + slope * (v - point) and the point itself. A rank-1 variable gets one
    panel per element (the first six), each varying that element alone."""
    var = var or next(iter(g.at))
    if var not in g.at:
        raise ConfigError(f"no variable {var!r}; the variables are {', '.join(g.at)}")
    at = {k: torch.tensor(v, dtype=torch.float64) for k, v in g.at.items()}
    centre, slopes = at[var].reshape(-1), torch.tensor(g.grad[var], dtype=torch.float64)
    slopes = slopes.reshape(-1)
    n = min(len(centre), MAX_PANELS)
    fig = new_figure(4.2 * n if n > 1 else 6, 4)
    axes = fig.subplots(1, n, squeeze=False)[0]
    for i, ax in enumerate(axes):
        v0, slope = float(centre[i]), float(slopes[i])
        half = span if span is not None else max(1.0, abs(v0))
        grid = torch.linspace(v0 - half, v0 + half, points, dtype=torch.float64)
        curve = []
        for u in grid:
            moved = centre.clone()
            moved[i] = u
            curve.append(float(g.objective({**at, var: moved.reshape(at[var].shape)})))
        f0 = float(g.objective(at))
        ax.plot(grid.numpy(), curve, color="tab:blue", label="f")
        ax.plot(
            grid.numpy(),
            (f0 + slope * (grid - v0)).numpy(),
            color="tab:red",
            lw=1,
            label=f"tangent, slope {slope:.4g}",
        )
        ax.scatter([v0], [f0], color="tab:red", zorder=3)
        name = var if at[var].dim() == 0 else f"{var}[{i}]"
        ax.set_xlabel(name)
        ax.set_title(f"d/d{name} = {slope:.4g} at {name} = {v0:.4g}", fontsize=10)
        ax.legend(loc="best", fontsize=8)
    axes[0].set_ylabel("value")
    fig.suptitle(g.expression)
    return fig
