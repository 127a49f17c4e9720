"""The epoch table in a Jupyter notebook: one output that updates in place.

In a terminal ProgressDisplay prints a line per row. In a notebook every print is an
output of its own, so a fit would leave a column of them; there the table is one
display (IPython's `display(obj, display_id=True)`) whose content `update` replaces as
rows arrive, at most every `min_interval` seconds and always at the end. The front end
picks the HTML table; text/plain is there for consoles and for the record.

IPython is only looked up when it is already imported and a kernel runs it (a Jupyter
kernel has a `kernel` attribute, a terminal IPython has none): in a terminal or a
script nothing is imported.
"""

from __future__ import annotations

import html
import sys
import time


def in_notebook() -> bool:
    """True inside a Jupyter kernel (ipykernel), False in a terminal, script or IPython REPL."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class EpochTable:
    """The rows shown so far, as HTML and as text; a front end shows one of them."""

    def __init__(self) -> None:
        self.header: list[str] = []
        self.rows: list[list[str]] = []
        self.footer = ""

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
            for row in self.rows
        )
        foot = f"<p>{html.escape(self.footer)}</p>" if self.footer else ""
        return (
            '<table class="descent-epochs" style="text-align: right">'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{foot}"
        )

    def __repr__(self) -> str:
        lines = ["  ".join(f"{c:>12}" for c in row) for row in [self.header, *self.rows]]
        return "\n".join(lines + ([self.footer] if self.footer else []))


class NotebookTable:
    """One display of an EpochTable, shown at the first row and updated at a bounded rate."""

    def __init__(self, min_interval: float = 0.2) -> None:
        self.min_interval = min_interval
        self.table = EpochTable()
        self.handle = None
        self._last = 0.0

    def add(self, header: list[str], cells: list[str]) -> None:
        self.table.header = header
        self.table.rows.append(cells)
        self._refresh(force=self.handle is None)

    def finish(self, footer: str) -> None:
        self.table.footer = footer
        self._refresh(force=True)

    def _refresh(self, force: bool) -> None:
        now = time.perf_counter()
        if not force and now - self._last < self.min_interval:
            return
        self._last = now
        from IPython.display import display  # only ever reached inside a kernel

        if self.handle is None:
            self.handle = display(self.table, display_id=True)
        else:
            self.handle.update(self.table)
