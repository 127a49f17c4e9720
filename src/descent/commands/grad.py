"""`descent grad FORMULA --at x=3`: the value and gradient of a formula at a point, by
autograd, with a central-difference check beside it (core/gradients.py); the book's
`xt.requires_grad_(); f(xt).backward(); xt.grad` as one command.

    descent grad "x**2" --at x=3                  value 9, d/dx 6
    descent grad "x**2" --at x=3,4,10 --sum       value 125, d/dx [6, 8, 20]
    descent grad "a*t**2+b*t+c" --at a=1,b=2,c=3 --data coaster.csv --y speed
                                                  the MSE against the file, and step 4
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from descent.commands.config import GradConfig
from descent.core.gradients import Gradient, grad
from descent.errors import ConfigError
from descent.io.files import check_writable, write_json
from descent.report.gradients import plot_gradient
from descent.report.plots import save_figure

PLOT_FORMATS = ("png", "svg", "pdf")


def check_grad_options(cfg: GradConfig) -> None:
    """Refuse what cannot work before any file is read or written."""
    if not cfg.formula.strip():
        raise ConfigError('give a formula, e.g. descent grad "x**2" --at x=3')
    if not cfg.at:
        raise ConfigError("give the point with --at, e.g. --at x=3 (or --at a=1,b=2)")
    if cfg.sum and cfg.data is not None:
        raise ConfigError(
            "--sum is for rank-1 values without --data; with --data the value is already "
            "one number, the mean squared error over the rows"
        )
    if cfg.y is not None and cfg.data is None:
        raise ConfigError("--y names the target column of --data; give --data FILE too")
    if cfg.var is not None and cfg.var not in cfg.at:
        raise ConfigError(f"--var {cfg.var}: not a variable of --at ({', '.join(cfg.at)})")
    if cfg.plot is not None:
        check_writable(cfg.plot, "--plot")
        suffix = Path(cfg.plot).suffix.lower().lstrip(".")
        if suffix not in PLOT_FORMATS:
            raise ConfigError(
                f"--plot {cfg.plot}: name the file .png, .svg or .pdf (the format it is drawn in)"
            )
    if cfg.json is not None:
        check_writable(cfg.json, "--json")


def grad_command(cfg: GradConfig, console: Console | None = None) -> Gradient:
    """Compute, print, and optionally plot and write the gradient; returns it."""
    console = console or Console(highlight=False, soft_wrap=True)
    check_grad_options(cfg)
    g = grad(cfg.formula, cfg.at, data=cfg.data, target=cfg.y, sum=cfg.sum)
    console.print(str(g), markup=False)
    if cfg.plot is not None:
        path = save_figure(plot_gradient(g, cfg.var), cfg.plot)
        var = cfg.var or next(iter(g.at))
        if not cfg.quiet:
            console.print(f"plot: {path} (the function along {var} and its tangent)", markup=False)
    if cfg.json is not None:
        write_json(Path(cfg.json), to_json(g))
    return g


def to_json(g: Gradient) -> dict:
    return {
        "expression": g.expression,
        "at": g.at,
        "value": g.value,
        "grad": g.grad,
        "central_difference": g.numeric,
        "step": g.steps,
        "relative_error": g.error(),
    }
