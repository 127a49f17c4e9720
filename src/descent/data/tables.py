"""CSV, TSV and Parquet columns -> float tensors, with errors that name the file, row and column.

    table = read_table("coaster.csv", columns=["time", "speed"])
    t, speed = table.select("time", "speed")      # (n,), (n,)

Row numbers in messages are file line numbers (the header is row 1, as in a
spreadsheet; Parquet rows are numbered from 1); columns are named and numbered from 1.

pyarrow does the reading: a clean file is parsed by its multi-threaded CSV reader
(table_text.py), and a file with a problem is read again in batches by the rules in
table_cells.py, which place every problem; Parquet goes through the same rules
(table_parquet.py). Memory: the float64 columns, about twice over while they are copied
out of Arrow, plus pyarrow's blocks.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.console import Console

from descent.data import table_parquet, table_text
from descent.data.table_cells import MISSING, SHOW, CellChecker, fill, float_values
from descent.errors import DataError

__all__ = ["MISSING", "SHOW", "Table", "check_enough_rows", "read_table"]


@dataclass
class Table:
    """Numeric columns read from a text or Parquet table.

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
    progress: bool | None = None,
) -> Table:
    """Read a delimited text file with a header row, or a Parquet file, into float tensors.

    Rules:
    - UTF-8 (a byte-order mark is allowed). The first non-blank row is the header: column
      names, distinct and non-empty. If every header cell is a number, it is an error.
    - The delimiter is the one of `,` tab `;` that splits the header into the most cells
      (comma first on ties); if none splits it, runs of whitespace separate cells.
    - Blank lines (and rows whose cells are all empty, like `,,`) are skipped; row numbers
      in messages are still file line numbers.
    - Every row must have as many cells as the header. Only the requested `columns`
      (default: all) must be numbers: Python float syntax without `_`, finite. Columns not
      requested are skipped unread (a clean file's other cells are not checked for UTF-8).
    - Missing values (empty, NA, N/A, #N/A, NaN, null, None, `-`, `?`; any case) are an
      error unless `drop_missing`, which drops each row with one in a requested column.
    - Every problem is counted; the message lists the first ten and counts the rest.
    - `.parquet` / `.pq` files: the same column rules and messages (table_parquet.py).
    - progress: a bar on stderr while reading; None shows it for files above
      PROGRESS_BYTES when stderr is a terminal.

    The reading itself is pyarrow's (table_text.py says how problems are still placed).
    """
    path = Path(path)
    _check_file(path)
    if path.suffix.lower() in table_parquet.SUFFIXES:
        return _read_parquet(path, columns, drop_missing, dtype, progress)
    try:
        head = table_text.read_head(path)
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror})") from None
    if head is None:
        raise DataError(
            f"{path}: the file is empty; expected a header row of column names, "
            "then one row of numbers per line, e.g.\n  x,y\n  0.5,1.2"
        )
    table_text.check_utf8_header(path, head)
    header = head.header
    _check_header(path, head.line, header)
    if not head.has_data:
        raise DataError(
            f"{path}: has a header ({', '.join(header)}) but no data rows below it (row "
            f"{head.line}); add one row of numbers per line"
        )
    wanted = _wanted(path, header, columns)
    with _progress(path, path.stat().st_size, progress, "B") as on_bytes:
        got = table_text.read_rows(
            path, head, wanted, lambda: CellChecker(path, header, wanted), on_bytes
        )
    if isinstance(got, CellChecker):
        tensors, n_rows, dropped = got.result(drop_missing, dtype)
        return Table(path, header, tensors, n_rows, dropped)
    n_rows = got.num_rows
    tensors = {}
    for name in wanted:  # each (n,); the Arrow column is freed as soon as it is copied
        chunks = [float_values(chunk) for chunk in got.column(name).chunks]
        got = got.drop_columns([name])
        tensors[name] = fill(chunks, n_rows, dtype)
    return Table(path, header, tensors, n_rows)


def check_enough_rows(n_rows: int, n_params: int, path: str | Path | None = None) -> None:
    """Raise DataError if there are fewer data rows than parameters to fit."""
    if n_rows < n_params:
        where = f"{path}: " if path is not None else ""
        raise DataError(
            f"{where}{n_rows} data row(s) but the model has {n_params} parameters; "
            "fitting needs at least one row per parameter (and many more to be trusted)"
        )


PROGRESS_BYTES = 50 * 2**20  # a file this big takes about a second: show the bar


def _check_file(path: Path) -> None:
    if not path.exists():
        near = difflib.get_close_matches(path.name, _siblings(path), n=1)
        hint = f"; did you mean {path.with_name(near[0])}?" if near else ""
        raise DataError(f"{path}: file not found{hint}")
    if path.is_dir():
        raise DataError(f"{path}: is a folder; give the path of a .csv, .tsv or .parquet file")


def _siblings(path: Path) -> list[str]:
    try:
        return [p.name for p in path.parent.iterdir()][:1000]
    except OSError:
        return []


def _wanted(path: Path, header: list[str], columns: Sequence[str] | None) -> list[str]:
    """The requested columns, unique and in order (default: all); each must exist."""
    wanted = list(dict.fromkeys(header if columns is None else columns))
    for name in wanted:
        if name not in header:
            raise _missing_column(path, name, header)
    return wanted


def _read_parquet(
    path: Path,
    columns: Sequence[str] | None,
    drop_missing: bool,
    dtype: torch.dtype,
    progress: bool | None,
) -> Table:
    pf = table_parquet.open_parquet(path)
    header = table_parquet.header(path, pf)
    n = pf.metadata.num_rows
    if n == 0:
        raise DataError(
            f"{path}: has columns ({', '.join(header)}) but no rows; write the data into it"
        )
    wanted = _wanted(path, header, columns)
    table_parquet.check_types(path, pf, wanted)
    checker = CellChecker(path, header, wanted)
    with _progress(path, n, progress, "rows") as on_rows:
        table_parquet.read_rows(pf, checker, on_rows)
    tensors, n_rows, dropped = checker.result(drop_missing, dtype)
    return Table(path, header, tensors, n_rows, dropped)


@contextmanager
def _progress(
    path: Path, total: int, show: bool | None, unit: str
) -> Iterator[Callable[[int], None]]:
    """A callback that moves a transient progress bar on stderr (from any thread) to `done`
    of `total`, or that does nothing: show=None shows it for a file above PROGRESS_BYTES
    when stderr is a terminal."""
    console = Console(stderr=True)
    if show is None:
        show = path.stat().st_size > PROGRESS_BYTES and console.is_terminal
    if not show:
        yield lambda done: None
        return
    # imported here: most reads show no bar, and rich.progress costs a job ~10 ms
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    size = DownloadColumn() if unit == "B" else MofNCompleteColumn()
    bar = Progress(
        TextColumn(f"reading {path.name}"),
        BarColumn(),
        size,
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    with bar:
        task = bar.add_task("read", total=total)
        yield lambda done: bar.update(task, completed=done)


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
