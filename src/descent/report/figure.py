"""Figures that show inline in a notebook with no `%matplotlib` line and no pyplot.

A plain `matplotlib.figure.Figure` made without pyplot has no rich representation:
Jupyter shows only `<Figure size 600x400 with 1 Axes>` until `%matplotlib inline`
registers a PNG printer for the Figure type. IPython asks every displayed object for
`_repr_png_`, so a Figure subclass that has one shows as an image in any fresh kernel
(and `display(fig)` works too). Where `%matplotlib inline` is active, IPython's printer
for Figure is found first and the figure still shows once. Nothing global changes:
no backend is switched and pyplot keeps no reference, so figures are freed as usual.

Every descent figure is made by `new_figure`. This module imports matplotlib: import it
inside the functions that draw (`import descent` stays light), from any layer.
"""

from __future__ import annotations

import io

from matplotlib.figure import Figure

INLINE_DPI = 100  # the PNG a notebook shows; save_figure chooses its own


class InlineFigure(Figure):
    """A matplotlib Figure that a notebook displays as a PNG when it is a cell's value."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=INLINE_DPI)
        return buf.getvalue()


def new_figure(width: float, height: float) -> InlineFigure:
    """An empty figure of width x height inches with constrained layout."""
    return InlineFigure(figsize=(width, height), layout="constrained")
