"""CSV/TSV columns -> float tensors, with errors that name the file, row and column.

    table = read_table("coaster.csv", columns=["time", "speed"])
    t, speed = table.select("time", "speed")      # (n,), (n,)

Row numbers in messages are file line numbers (the header is row 1, as in a
spreadsheet); columns are named and numbered from 1.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from descent.errors import DataError

DELIMITERS = (",", "\t", ";")  # tried in this order; whitespace is the fallback
# Cells that mean "no value" (compared lower-cased, after stripping whitespace).
MISSING = frozenset({"", "na", "n/a", "#n/a", "nan", "+nan", "-nan", "null", "none", "-", "?"})
SHOW = 10  # problems listed in one message; the rest are counted


@dataclass
class Table:
    """Numeric columns read from a text table.

    `header` is every column name in the file; `columns` holds the requested (or all)
    columns as (n,) tensors; `dropped_rows` lists the file lines dropped for missing values.
    """

    path: Path
    header: list[str]
    columns: dict[str, torch.Tensor]
    n_rows: int
    dropped_rows: list[int] = field(default_factory=list)

    def __repr__(self) -> str:
        dropped = f", dropped_rows={len(self.dropped_rows)}" if self.dropped_rows else ""
        cols = list(self.columns)
        return f"Table({str(self.path)!r}, n_rows={self.n_rows}, columns={cols}{dropped})"

    def select(self, x_cols: str | Sequence[str], y_col: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y): x is (n,) for one column name (a str or a list of one), else (n, d)
        with columns in the order given; y is (n,)."""
        names = [x_cols] if isinstance(x_cols, str) else list(x_cols)
        if not names:
            raise DataError(f"{self.path}: no x columns given; choose from {self.header}")
        for name in [*names, y_col]:
            if name not in self.columns:
                raise _missing_column(self.path, name, self.header, loaded=list(self.columns))
        x = (
            self.columns[names[0]]
            if len(names) == 1
            else torch.stack([self.columns[n] for n in names], dim=1)
        )  # (n,) or (n, d)
        return x, self.columns[y_col]


def read_table(
    path: str | Path,
    columns: Sequence[str] | None = None,
    drop_missing: bool = False,
    dtype: torch.dtype = torch.float64,
) -> Table:
    """Read a delimited text file with a header row into float tensors.

    Rules:
    - UTF-8 (a byte-order mark is allowed). The first non-blank row is the header: column
      names, distinct and non-empty. If every header cell is a number, it is an error.
    - The delimiter is the one of `,` tab `;` that splits the header into the most cells
      (comma first on ties); if none splits it, runs of whitespace separate cells.
    - Blank lines (and rows whose cells are all empty, like `,,`) are skipped; row numbers
      in messages are still file line numbers.
    - Every row must have as many cells as the header. Only the requested `columns`
      (default: all) must be numbers: Python float syntax without `_`, finite.
    - Missing values (empty, NA, N/A, #N/A, NaN, null, None, `-`, `?`; any case) are an
      error unless `drop_missing`, which drops each row with one in a requested column.
    - Every problem is collected; the message lists the first ten and counts the rest.
    """
    path = Path(path)
    text = _read_text(path)
    records = list(_records(path, text))
    if not records:
        raise DataError(
            f"{path}: the file is empty; expected a header row of column names, "
            "then one row of numbers per line, e.g.\n  x,y\n  0.5,1.2"
        )
    header_line, header = records[0]
    _check_header(path, header_line, header)
    rows = records[1:]
    if not rows:
        raise DataError(
            f"{path}: has a header ({', '.join(header)}) but no data rows below it (row "
            f"{header_line}); add one row of numbers per line"
        )
    wanted = list(dict.fromkeys(header if columns is None else columns))  # unique, in order
    for name in wanted:
        if name not in header:
            raise _missing_column(path, name, header)
    index = {name: header.index(name) for name in wanted}

    problems: list[str] = []  # cells that cannot work
    missing: list[str] = []  # cells that --drop-missing could drop
    values: dict[str, list[float]] = {name: [] for name in wanted}
    dropped: list[int] = []
    for line, cells in rows:
        if len(cells) != len(header):
            names = f" ({', '.join(header)})" if len(header) <= 8 else ""
            problems.append(
                f"row {line}: expected {len(header)} cells{names} like the header, "
                f"found {len(cells)}"
            )
            continue
        row: dict[str, float] = {}
        row_missing = False
        for name, j in index.items():
            cell = cells[j]
            where = f'row {line}, column "{name}" ({j + 1})'
            if cell.lower() in MISSING:
                missing.append(f"{where}: {_quote(cell) if cell else 'empty'}")
                row_missing = True
                continue
            value = _number(cell)
            if value is None:
                hint = " (write decimals with a point)" if _decimal_comma(cell) else ""
                problems.append(f"{where}: {_quote(cell)} is not a number{hint}")
            elif math.isnan(value):
                missing.append(f"{where}: {_quote(cell)}")
                row_missing = True
            elif math.isinf(value):
                problems.append(f"{where}: {_quote(cell)} is infinite; only finite numbers work")
            else:
                row[name] = value
        if row_missing:
            dropped.append(line)
        elif len(row) == len(index):
            for name, value in row.items():
                values[name].append(value)

    if problems:
        also = f" (and {len(missing)} missing values)" if missing else ""
        raise DataError(
            f"{path}: {len(problems)} problem(s){also}:\n{_listing(problems)}\n"
            "Fix these rows or cells, or read only the columns you need."
        )
    if missing and not drop_missing:
        raise DataError(
            f"{path}: {len(missing)} missing value(s) in {len(dropped)} row(s):\n"
            f"{_listing(missing)}\n"
            "Fill them in, or pass --drop-missing (drop_missing=True) to skip those rows."
        )
    n_rows = len(next(iter(values.values()))) if values else len(rows) - len(dropped)
    if n_rows == 0:
        raise DataError(
            f"{path}: every one of the {len(rows)} data rows has a missing value in "
            f"{', '.join(wanted)}; nothing is left to fit"
        )
    tensors = {name: torch.tensor(v, dtype=dtype) for name, v in values.items()}  # each (n,)
    return Table(path, header, tensors, n_rows, dropped)


def check_enough_rows(n_rows: int, n_params: int, path: str | Path | None = None) -> None:
    """Raise DataError if there are fewer data rows than parameters to fit."""
    if n_rows < n_params:
        where = f"{path}: " if path is not None else ""
        raise DataError(
            f"{where}{n_rows} data row(s) but the model has {n_params} parameters; "
            "fitting needs at least one row per parameter (and many more to be trusted)"
        )


def _read_text(path: Path) -> str:
    if not path.exists():
        near = difflib.get_close_matches(path.name, _siblings(path), n=1)
        hint = f"; did you mean {path.with_name(near[0])}?" if near else ""
        raise DataError(f"{path}: file not found{hint}")
    if path.is_dir():
        raise DataError(f"{path}: is a folder; give the path of a .csv or .tsv file")
    try:
        return path.read_text(encoding="utf-8-sig")  # -sig: drop a byte-order mark
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path}: is not UTF-8 text (byte {err.start}); save it as UTF-8 CSV"
        ) from None
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror})") from None


def _siblings(path: Path) -> list[str]:
    try:
        return [p.name for p in path.parent.iterdir()][:1000]
    except OSError:
        return []


def _records(path: Path, text: str) -> Iterator[tuple[int, list[str]]]:
    """(file line, stripped cells) for every non-blank row."""
    first = next((s for s in text.splitlines() if s.strip()), "")
    counts = {
        d: len(next(csv.reader([first], delimiter=d, skipinitialspace=True), []))
        for d in DELIMITERS
    }
    delimiter = max(DELIMITERS, key=lambda d: counts[d])  # first wins ties
    if counts[delimiter] == 1 and len(first.split()) > 1:
        for line, raw in enumerate(io.StringIO(text, newline=None), start=1):
            cells = raw.split()
            if cells:
                yield line, cells
        return
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, skipinitialspace=True)
    start = 1
    try:
        for row in reader:
            cells = [c.strip() for c in row]
            if any(cells):
                yield start, cells
            start = reader.line_num + 1
    except csv.Error as err:
        raise DataError(f"{path}: row {reader.line_num}: cannot be read as CSV ({err})") from None


def _check_header(path: Path, line: int, header: list[str]) -> None:
    if all(_number(c) is not None for c in header):
        raise DataError(
            f"{path}: the first row (row {line}) looks like data, not column names: "
            f"{', '.join(header)}\nAdd a header row naming each column, e.g. "
            f"{','.join(f'col{j + 1}' for j in range(len(header)))}"
        )
    problems = []
    for j, name in enumerate(header):
        if not name:
            problems.append(f"column {j + 1} has no name")
        elif name in header[:j]:
            problems.append(
                f'column {j + 1} is "{name}" again (also column {header.index(name) + 1})'
            )
    if problems:
        raise DataError(
            f"{path}: header row {line}: {'; '.join(problems)}; give every column "
            "a distinct, non-empty name"
        )


def _missing_column(
    path: Path, name: str, header: list[str], loaded: list[str] | None = None
) -> DataError:
    if loaded is not None and name in header:
        return DataError(
            f'{path}: column "{name}" was not read; read_table was asked only for {loaded}'
        )
    near = difflib.get_close_matches(name, header, n=1)
    hint = f' Did you mean "{near[0]}"?' if near else ""
    return DataError(
        f'{path}: no column named "{name}".{hint} The columns are: {", ".join(header)}'
    )


def _number(cell: str) -> float | None:
    """float(cell) for plain ASCII numbers; None for anything else (1_000, '١٢', 'abc')."""
    if not cell.isascii() or "_" in cell:
        return None
    try:
        return float(cell)
    except ValueError:
        return None


def _decimal_comma(cell: str) -> bool:
    return cell.count(",") == 1 and _number(cell.replace(",", ".")) is not None


def _quote(cell: str) -> str:
    cell = cell if len(cell) <= 40 else cell[:37] + "..."
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in cell)  # a NUL shows as \x00
    return '"' + shown.replace('"', '\\"') + '"'


def _listing(items: list[str]) -> str:
    lines = [f"  {item}" for item in items[:SHOW]]
    if len(items) > SHOW:
        lines.append(f"  ... and {len(items) - SHOW} more")
    return "\n".join(lines)
