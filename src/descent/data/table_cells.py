"""The rules for table cells, applied to batches of rows: text -> numbers, or a message
that names the file, row and column of every problem.

    checker = CellChecker(path, header, wanted=["time", "speed"])
    checker.add(lines, {"time": texts, "speed": texts})   # once per batch, in file order
    columns, n_rows, dropped = checker.result(drop_missing=False)

A cell is a number when it has Python's float() syntax in ASCII without `_` and is finite;
it is missing when it is one of MISSING (any case), or NaN. Numeric Arrow arrays (from
Parquet) are checked by the same rules: null and NaN are missing, infinities are problems.
Batches are vectorised (pyarrow.compute); only the first SHOW problems are ever formatted.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from descent.errors import DataError

# Cells that mean "no value" (compared lower-cased, after stripping whitespace).
MISSING = frozenset({"", "na", "n/a", "#n/a", "nan", "+nan", "-nan", "null", "none", "-", "?"})
SHOW = 10  # problems listed in one message; the rest are counted
# float() syntax, ASCII only: float("1_000") is 1000.0 and float("١٢") is 12.0, but a table
# cell like that is more likely a typo or another locale than a number.
NUMBER = (
    r"^[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    r"|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[nN][aA][nN])$"
)


def _string_array(words: list[str]) -> pa.StringArray:
    """An Arrow string array built from its buffers: converting Python objects
    (pa.array, pa.scalar) makes pyarrow import pandas, 0.1 s of a small fit's start."""
    data = [w.encode() for w in words]
    offsets = np.cumsum([0, *map(len, data)], dtype=np.int32)
    return pa.StringArray.from_buffers(
        len(data), pa.py_buffer(offsets.tobytes()), pa.py_buffer(b"".join(data))
    )


_MISSING = _string_array(sorted(MISSING))
_NOT_A_NUMBER, _INFINITE = 1, 2  # kinds of problem cell


class CellChecker:
    """Checks batches of data rows against the rules; keeps the values of good rows, counts
    every problem and formats the first SHOW of each kind, in file order."""

    def __init__(self, path: Path, header: list[str], wanted: list[str]) -> None:
        self.path, self.header = path, header
        self.index = {name: header.index(name) for name in wanted}  # name -> column (0-based)
        self.rows = 0  # data rows seen, ragged ones included
        self.problems = _Listing()  # rows or cells that cannot work
        self.missing = _Listing()  # cells that drop_missing could drop
        self.values: dict[str, list[np.ndarray]] = {name: [] for name in wanted}  # float64 chunks
        self.dropped: list[np.ndarray] = []  # lines of rows with a missing value

    def add(
        self,
        lines: np.ndarray,
        cells: Mapping[str, pa.Array],
        ragged: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """One batch. lines: (m,) file line of each row; cells: name -> (m,) stripped text or
        numbers; ragged: (lines, cells found) of rows whose cell count differs from the header."""
        bad_lines, found = ragged if ragged is not None else (np.empty(0, np.int64),) * 2
        self.rows += len(lines) + len(bad_lines)
        row_missing = np.zeros(len(lines), dtype=bool)
        row_bad = np.zeros(len(lines), dtype=bool)
        parsed: dict[str, np.ndarray] = {}
        kinds: list[np.ndarray] = []
        bad_keys, missing_keys = [(bad_lines, np.full(len(bad_lines), -1), found)], []
        for k, name in enumerate(self.index):
            values, missing, bad = _parse(cells[name])  # (m,) float64, bool, kind (0 = fine)
            parsed[name] = values
            kinds.append(bad)
            row_missing |= missing
            row_bad |= bad > 0
            at = np.flatnonzero(bad)
            bad_keys.append((lines[at], np.full(len(at), k), at))
            at = np.flatnonzero(missing)
            missing_keys.append((lines[at], np.full(len(at), k), at))
        self.problems.add(bad_keys, lambda line, k, i: self._problem(line, k, i, cells, kinds))
        self.missing.add(missing_keys, lambda line, k, i: self._missing(line, k, i, cells))
        if row_missing.any():
            self.dropped.append(lines[row_missing])
        keep = ~(row_missing | row_bad)
        for name, values in parsed.items():
            self.values[name].append(values if keep.all() else values[keep])

    def result(
        self, drop_missing: bool, dtype: torch.dtype
    ) -> tuple[dict[str, torch.Tensor], int, list[int]]:
        """(columns as (n,) tensors, n_rows, dropped lines), or the DataError that lists
        the problems (first) or the missing values (unless drop_missing)."""
        path = self.path
        if self.problems.count:
            also = f" (and {self.missing.count} missing values)" if self.missing.count else ""
            raise DataError(
                f"{path}: {self.problems.count} problem(s){also}:\n{self.problems}\n"
                "Fix these rows or cells, or read only the columns you need."
            )
        dropped = np.concatenate(self.dropped).tolist() if self.dropped else []
        if self.missing.count and not drop_missing:
            raise DataError(
                f"{path}: {self.missing.count} missing value(s) in {len(dropped)} row(s):\n"
                f"{self.missing}\n"
                "Fill them in, or pass --drop-missing (drop_missing=True) to skip those rows."
            )
        n_rows = self.rows - len(dropped)
        if n_rows == 0:
            raise DataError(
                f"{path}: every one of the {self.rows} data rows has a missing value in "
                f"{', '.join(self.index)}; nothing is left to fit"
            )
        columns = {name: fill(chunks, n_rows, dtype) for name, chunks in self.values.items()}
        self.values = {}
        return columns, n_rows, dropped

    def _where(self, line: int, k: int) -> str:
        name = list(self.index)[k]
        return f'row {line}, column "{name}" ({self.index[name] + 1})'

    def _problem(
        self, line: int, k: int, i: int, cells: Mapping[str, pa.Array], kinds: list[np.ndarray]
    ) -> str:
        if k < 0:  # a ragged row; i is the number of cells found
            names = f" ({', '.join(self.header)})" if len(self.header) <= 8 else ""
            return (
                f"row {line}: expected {len(self.header)} cells{names} like the header, found {i}"
            )
        cell = _text(cells[list(self.index)[k]], i)
        if kinds[k][i] == _INFINITE:
            return f"{self._where(line, k)}: {quote(cell)} is infinite; only finite numbers work"
        hint = " (write decimals with a point)" if _decimal_comma(cell) else ""
        return f"{self._where(line, k)}: {quote(cell)} is not a number{hint}"

    def _missing(self, line: int, k: int, i: int, cells: Mapping[str, pa.Array]) -> str:
        cell = cells[list(self.index)[k]][i].as_py()
        shown = "null" if cell is None else quote(_text(cells[list(self.index)[k]], i))
        return f"{self._where(line, k)}: {shown if cell != '' else 'empty'}"


class _Listing:
    """A count of problems and the text of the first SHOW, in (line, column) order."""

    def __init__(self) -> None:
        self.count, self.shown = 0, []

    def add(self, keys: list[tuple[np.ndarray, np.ndarray, np.ndarray]], describe) -> None:
        """keys: (line, column order, detail) arrays from one batch, which follows the last."""
        if not keys:  # no column requested
            return
        line, order, detail = (np.concatenate(parts) for parts in zip(*keys, strict=True))
        self.count += len(line)
        room = SHOW - len(self.shown)
        if room > 0 and len(line):
            first = np.lexsort((order, line))[:room]  # by line, then column
            self.shown += [describe(int(line[j]), int(order[j]), int(detail[j])) for j in first]

    def __str__(self) -> str:
        lines = [f"  {item}" for item in self.shown]
        if self.count > SHOW:
            lines.append(f"  ... and {self.count - SHOW} more")
        return "\n".join(lines)


def _parse(cells: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(m,) cells -> (values float64, missing bool, problem kind int8), each (m,)."""
    if pa.types.is_string(cells.type) or pa.types.is_large_string(cells.type):
        # ascii_lower is exact here: MISSING is ASCII and no other letter lowers into it
        missing = pc.is_in(pc.ascii_lower(cells), value_set=_MISSING)
        number = pc.match_substring_regex(cells, NUMBER)
        values = pc.cast(pc.if_else(number, cells, "0"), pa.float64())
        missing = np.asarray(pc.fill_null(missing, True), dtype=bool)
        number = np.asarray(pc.fill_null(number, False), dtype=bool) & ~missing
    else:  # numbers (Parquet): null is missing
        values = pc.cast(cells, pa.float64())
        missing = np.asarray(pc.is_null(values), dtype=bool)
        number = ~missing
        values = pc.fill_null(values, 0.0)
    values = values.to_numpy(zero_copy_only=False)
    nan, inf = np.isnan(values), np.isinf(values)
    missing |= number & nan
    kind = np.where(number & inf, _INFINITE, np.where(number | missing, 0, _NOT_A_NUMBER))
    return values, missing, kind.astype(np.int8)


def float_values(chunk: pa.Array) -> np.ndarray:
    """A float64 Arrow chunk's values as a read-only numpy view of its buffer (Arrow's
    own to_numpy imports pandas, 0.1 s of a small fit's start); other chunks convert."""
    if chunk.type == pa.float64() and chunk.null_count == 0:
        return np.frombuffer(chunk.buffers()[1], np.float64, len(chunk), 8 * chunk.offset)
    return chunk.to_numpy(zero_copy_only=False)


def fill(chunks: list[np.ndarray], n: int, dtype: torch.dtype) -> torch.Tensor:
    """Concatenate float64 chunks into one new (n,) tensor of `dtype`, one chunk at a time."""
    out = torch.empty(n, dtype=dtype)
    try:
        view = out.numpy()  # shares memory; numpy converts while copying
    except TypeError:  # a dtype numpy lacks (bfloat16): convert each chunk with torch
        view = None
    start = 0
    while chunks:
        chunk = chunks.pop(0)  # freed once copied
        stop = start + len(chunk)
        if view is not None:
            view[start:stop] = chunk
        else:
            out[start:stop] = torch.from_numpy(np.array(chunk, dtype=np.float64))
        start = stop
    assert start == n, f"{start} values for {n} rows"
    return out


def _text(cells: pa.Array, i: int) -> str:
    """Cell i as text for a message: a number from Parquet is shown as Python writes it."""
    value = cells[i].as_py()
    return "null" if value is None else value if isinstance(value, str) else repr(value)


def _decimal_comma(cell: str) -> bool:
    return cell.count(",") == 1 and _parse(pa.array([cell.replace(",", ".")]))[2][0] == 0


def quote(cell: str) -> str:
    cell = cell if len(cell) <= 40 else cell[:37] + "..."
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in cell)  # a NUL shows as \x00
    return '"' + shown.replace('"', '\\"') + '"'
