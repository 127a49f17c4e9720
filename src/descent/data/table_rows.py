"""One column of a table as text, with the file line of every data row: group labels
for `descent fit --by COL` (names or numbers), and the line to name when a value read
by tables.read_table is refused later (a sigma of 0, say).

The rows are those read_table reads, by the same rules (tables.py): blank rows and rows
of empty cells are skipped, line numbers are file lines (Parquet rows count from 1).
The whole file is read by Python's csv module, so this is for labels and error
messages, not for columns of numbers.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from descent.data import table_parquet, table_text
from descent.data.table_cells import MISSING
from descent.errors import DataError


@dataclass
class TextColumn:
    """`values[i]` is the cell of data row i (None when missing), on file line `lines[i]`."""

    name: str
    lines: np.ndarray  # (n,) int64
    values: list[str | None]

    def without(self, dropped_lines: list[int]) -> TextColumn:
        """The rows whose lines are not in `dropped_lines` (read_table's dropped rows)."""
        if not dropped_lines:
            return self
        keep = ~np.isin(self.lines, np.asarray(dropped_lines, dtype=np.int64))
        values = [v for v, k in zip(self.values, keep.tolist(), strict=True) if k]
        return TextColumn(self.name, self.lines[keep], values)


def read_text_column(path: str | Path, name: str) -> TextColumn:
    """Column `name` of a CSV/TSV/Parquet file as stripped text, one cell per data row."""
    path = Path(path)
    if path.suffix.lower() in table_parquet.SUFFIXES:
        pf = table_parquet.open_parquet(path)
        if name not in table_parquet.header(path, pf):
            raise DataError(f"{path}: no column {name!r}")
        cells = pf.read(columns=[name]).column(0).to_pylist()
        values = [_cell(None if v is None else str(v)) for v in cells]
        return TextColumn(name, np.arange(1, len(values) + 1, dtype=np.int64), values)
    head = table_text.read_head(path)
    if head is None or name not in head.header:
        raise DataError(f"{path}: no column {name!r}")
    j, n = head.header.index(name), len(head.header)
    lines, values = [], []
    with open(path, "rb") as raw:
        raw.seek(head.offset)
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
        if head.delimiter is None:
            rows = ((head.first_line + i, s.split()) for i, s in enumerate(text) if s.split())
        else:
            reader = csv.reader(text, delimiter=head.delimiter, skipinitialspace=True)
            rows = table_text._records(path, reader, first=head.first_line)
        for line, cells in rows:
            if len(cells) != n:
                raise DataError(f"{path}: row {line} has {len(cells)} cells but the header has {n}")
            lines.append(line)
            values.append(_cell(cells[j]))
    return TextColumn(name, np.asarray(lines, dtype=np.int64), values)


def _cell(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.strip()
    return None if text.lower() in MISSING else text
