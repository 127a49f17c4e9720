"""Delimited text tables (CSV, TSV, `;`, runs of whitespace) -> checked float columns.

Each step runs only when the one before cannot answer:

1. The header: Python's csv module reads the first lines and sniffs the delimiter.
2. The fast read: pyarrow's multi-threaded CSV reader with every requested column as
   float64 (other columns are skipped unread). A clean file is done here, at pandas' speed.
3. The exact read, when step 2 meets anything else (a missing value, text, a ragged row,
   NaN, inf, a quoted cell after a space, a whitespace-separated file): the rows are read
   again as text in batches and `CellChecker` names the line and column of each problem.
   A file without quotes is read by pyarrow as one string per physical line, so line
   numbers are exact and the batches are vectorised; a quoted file goes through Python's
   csv module, as the reader before pyarrow did.

Line numbers are file lines (the header's is usually 1). UTF-8: the header must be; a
data cell must be when it is read as text (the fast read skips unrequested columns unread,
the exact read decodes whole lines), and the first bad byte is named with its line.
`on_bytes` callbacks move the caller's progress bar.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from descent.data.table_cells import CellChecker
from descent.errors import DataError

DELIMITERS = (",", "\t", ";")  # tried in this order; whitespace is the fallback
BOM = codecs.BOM_UTF8
BATCH_ROWS = 65_536  # rows per batch for the csv-module reader
LINE_BLOCK = 1 << 24  # bytes per batch for the line reader (a line must fit in one)
SCAN_CHUNK = 1 << 22  # bytes per read when scanning a file for quotes or bad UTF-8
# Characters that split nothing when the line reader asks pyarrow for whole lines: the
# first one the file lacks serves as the "delimiter" (the ASCII separators, then NUL).
SENTINELS = ("\x1f", "\x1e", "\x1d", "\x1c", "\x00")


@dataclass
class Head:
    """What the first lines of a file say about the rest."""

    delimiter: str | None  # None: cells are separated by runs of whitespace
    header: list[str]  # column names, stripped
    line: int  # file line of the header
    offset: int  # byte offset where the data rows start
    first_line: int  # file line number at `offset`
    has_data: bool  # a non-blank row follows the header


def read_head(path: Path) -> Head | None:
    """The header and where the data start; None for a file with no non-blank row."""
    with open(path, "rb") as raw:
        start = len(BOM) if raw.read(len(BOM)) == BOM else 0
        raw.seek(start)
        # surrogateescape: a bad byte in a data row is found (and named) by the row readers
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="")
        ends = [start]  # ends[i]: byte offset after line i (1-based)

        def lines() -> Iterator[str]:
            while line := text.readline():
                ends.append(ends[-1] + len(line.encode("utf-8", "surrogateescape")))
                yield line

        source = lines()
        seen = []
        for line in source:  # the first non-blank line decides the delimiter
            seen.append(line)
            if line.strip():
                break
        else:
            return None
        delimiter = _sniff(seen[-1])
        if delimiter is None:
            header, line_no = seen[-1].split(), len(seen)
            has_data = any(s.split() for s in source)
            return Head(None, header, line_no, ends[line_no], line_no + 1, has_data)
        reader = csv.reader(_chain(seen, source), delimiter=delimiter, skipinitialspace=True)
        records = _records(path, reader)
        line_no, header = next(records, (0, []))
        if not header:
            return None
        after = reader.line_num  # lines the header record took, with blank ones before it
        has_data = next(records, None) is not None
        return Head(delimiter, header, line_no, ends[after], after + 1, has_data)


def check_utf8_header(path: Path, head: Head) -> None:
    if any(_has_surrogates(name) for name in head.header):
        raise_not_utf8(path)


def read_rows(
    path: Path,
    head: Head,
    wanted: list[str],
    checker: Callable[[], CellChecker],
    on_bytes: Callable[[int], None],
) -> CellChecker | pa.Table:
    """The fast read (a pyarrow Table of float64 columns, each finite) when it works,
    else the exact read (a CellChecker that has seen every row)."""
    table = _fast(path, head, wanted, on_bytes)
    if table is not None:
        return table
    quoted, sentinel = _scan(path, head.offset)
    if sentinel is not None and (head.delimiter is None or not quoted):
        result = _by_lines(path, head, sentinel, checker(), on_bytes)
        if result is not None:
            return result
    return _by_csv_module(path, head, checker(), on_bytes)


def raise_not_utf8(path: Path) -> None:
    """Find the first byte that is not UTF-8 and raise a DataError naming it and its line."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open(path, "rb") as f:
        while chunk := f.read(SCAN_CHUNK):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as err:
                pending = len(decoder.getstate()[0])  # bytes held back from the last chunk
                bad = offset - pending + err.start
                line = 1 + _lines_before(f, bad)
                raise DataError(
                    f"{path}: row {line} is not UTF-8 text (byte {bad}); save it as UTF-8 CSV"
                ) from None
            offset += len(chunk)
    raise DataError(f"{path}: is not UTF-8 text; save it as UTF-8 CSV")


# --- step 1: the header ----------------------------------------------------------------


def _sniff(first: str) -> str | None:
    """The delimiter of `first` (the first non-blank line), or None for runs of whitespace."""
    counts = {
        d: len(next(csv.reader([first], delimiter=d, skipinitialspace=True), []))
        for d in DELIMITERS
    }
    delimiter = max(DELIMITERS, key=lambda d: counts[d])  # first wins ties
    if counts[delimiter] == 1 and len(first.split()) > 1:
        return None
    return delimiter


def _chain(seen: list[str], rest: Iterator[str]) -> Iterator[str]:
    yield from seen
    yield from rest


def _records(path: Path, reader, first: int = 1) -> Iterator[tuple[int, list[str]]]:
    """(file line, stripped cells) for every row of a csv reader that is not blank; the
    reader's first line is file line `first`."""
    start = 1
    try:
        for row in reader:
            cells = [c.strip() for c in row]
            if any(cells):
                yield first - 1 + start, cells
            start = reader.line_num + 1
    except csv.Error as err:
        line = first - 1 + reader.line_num
        raise DataError(f"{path}: row {line}: cannot be read as CSV ({err})") from None


def _has_surrogates(s: str) -> bool:
    return any("\udc80" <= c <= "\udcff" for c in s)


# --- step 2: the fast read ---------------------------------------------------------------


class _Counted(io.RawIOBase):
    """A file from `offset` on that reports how many bytes were read (for a progress bar)."""

    def __init__(self, path: Path, offset: int, on_bytes: Callable[[int], None]) -> None:
        self.file = open(path, "rb", buffering=0)  # noqa: SIM115 (closed by close())
        self.file.seek(offset)
        self.done, self.on_bytes = offset, on_bytes

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.file.readinto(buffer)
        self.done += n
        self.on_bytes(self.done)
        return n

    def close(self) -> None:
        self.file.close()
        super().close()


def _fast(
    path: Path, head: Head, wanted: list[str], on_bytes: Callable[[int], None]
) -> pa.Table | None:
    """pyarrow's reader with the wanted columns as float64; None if any cell is not a finite
    number, a row is ragged or blank-but-not-empty, or the delimiter is whitespace."""
    if head.delimiter is None:
        return None
    # With no column wanted, one is still read (as bytes, never failing) so rows are counted.
    types = {name: pa.float64() for name in wanted} or {head.header[0]: pa.binary()}
    with _Counted(path, head.offset, on_bytes) as counted:
        try:
            table = pacsv.read_csv(
                pa.PythonFile(counted, mode="r"),
                read_options=pacsv.ReadOptions(column_names=head.header, use_threads=True),
                parse_options=pacsv.ParseOptions(delimiter=head.delimiter),
                convert_options=pacsv.ConvertOptions(
                    column_types=types,
                    include_columns=list(types),
                    null_values=[],  # a missing value is handled by the exact read
                    strings_can_be_null=False,
                ),
            )
        except pa.ArrowInvalid:
            return None
    for name in wanted:
        column = table.column(name)
        if column.null_count or not pc.all(pc.is_finite(column)).as_py():
            return None  # NaN is a missing value, inf a problem: the exact read names them
    return table


# --- step 3: the exact read ------------------------------------------------------------------


def _scan(path: Path, offset: int) -> tuple[bool, str | None]:
    """(the data rows hold a quote character, the first SENTINELS character they lack)."""
    quoted, absent = False, list(SENTINELS)
    with open(path, "rb") as f:
        f.seek(offset)
        while chunk := f.read(SCAN_CHUNK):
            quoted = quoted or b'"' in chunk
            absent = [s for s in absent if s.encode() not in chunk]
    return quoted, absent[0] if absent else None


def _by_lines(
    path: Path, head: Head, sentinel: str, checker: CellChecker, on_bytes: Callable[[int], None]
) -> CellChecker | None:
    """Rows as pyarrow strings, one per physical line, split and stripped by pyarrow.compute.
    None if pyarrow cannot read the lines (a line longer than LINE_BLOCK)."""
    n = len(head.header)
    line, done = head.first_line, head.offset
    with _Counted(path, head.offset, lambda _: None) as counted:  # pyarrow reads ahead
        try:
            reader = pacsv.open_csv(
                pa.PythonFile(counted, mode="r"),
                read_options=pacsv.ReadOptions(
                    column_names=["line"], block_size=LINE_BLOCK, use_threads=False
                ),
                parse_options=pacsv.ParseOptions(
                    delimiter=sentinel, quote_char=False, ignore_empty_lines=False
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types={"line": pa.string()}, null_values=[], strings_can_be_null=False
                ),
            )
            for batch in reader:
                text = batch.column(0)  # (b,) one string per physical line
                lines = np.arange(line, line + len(text))
                line += len(text)
                done += pc.sum(pc.binary_length(text)).as_py() + len(text)  # + line ends
                if head.delimiter is None:
                    text = pc.utf8_trim_whitespace(text)
                    blank = pc.equal(text, "")
                else:  # blank, or only delimiters and whitespace, like ",,"
                    blank = _blank(text, head.delimiter)
                rows = pc.filter(text, pc.invert(blank))
                lines = lines[~np.asarray(blank, dtype=bool)]
                if head.delimiter is None:
                    cells = pc.utf8_split_whitespace(rows)  # (r,) lists of cells
                else:  # cells are stripped one by one below (a tab is a delimiter and a space)
                    cells = pc.split_pattern(rows, head.delimiter)
                found = np.asarray(pc.list_value_length(cells), dtype=np.int64)
                fits = found == n
                if not fits.all():
                    cells = pc.filter(cells, pa.array(fits))
                columns = {
                    name: pc.utf8_trim_whitespace(pc.list_element(cells, j))
                    for name, j in checker.index.items()
                }
                checker.add(lines[fits], columns, (lines[~fits], found[~fits]))
                on_bytes(done)  # the bar follows the rows checked, not the bytes read ahead
        except pa.ArrowInvalid as err:
            if "UTF8" in str(err):
                raise_not_utf8(path)
            return None
    return checker


def _blank(text: pa.Array, delimiter: str) -> pa.Array:
    """(b,) lines -> (b,) bool: only whitespace and delimiters. A line whose first
    non-whitespace character is not the delimiter has a non-empty first cell."""
    trimmed = pc.utf8_trim_whitespace(text)
    maybe = pc.starts_with(trimmed, delimiter)
    if not pc.any(maybe).as_py():
        return pc.equal(trimmed, "")
    gaps = pc.utf8_trim_whitespace(pc.replace_substring(trimmed, delimiter, " "))
    return pc.or_(pc.equal(trimmed, ""), pc.and_(maybe, pc.equal(gaps, "")))


def _by_csv_module(
    path: Path, head: Head, checker: CellChecker, on_bytes: Callable[[int], None]
) -> CellChecker:
    """Rows read by Python's csv module (quoted cells may hold delimiters and newlines)."""
    n = len(head.header)
    with _Counted(path, head.offset, on_bytes) as counted:
        text = io.TextIOWrapper(io.BufferedReader(counted), encoding="utf-8", newline="")
        if head.delimiter is None:
            rows = ((head.first_line + i, raw.split()) for i, raw in enumerate(text) if raw.split())
        else:
            reader = csv.reader(text, delimiter=head.delimiter, skipinitialspace=True)
            rows = _records(path, reader, first=head.first_line)
        try:
            while True:
                batch = [row for _, row in zip(range(BATCH_ROWS), rows, strict=False)]
                if not batch:
                    break
                lines = np.array([line for line, _ in batch], dtype=np.int64)
                found = np.array([len(cells) for _, cells in batch], dtype=np.int64)
                fits = found == n
                good = [cells for _, cells in batch if len(cells) == n]
                columns = {
                    name: pa.array([cells[j] for cells in good], type=pa.string())
                    for name, j in checker.index.items()
                }
                checker.add(lines[fits], columns, (lines[~fits], found[~fits]))
        except UnicodeDecodeError:
            raise_not_utf8(path)
    return checker


def _lines_before(f, end: int) -> int:
    """Line breaks in the first `end` bytes of file f: \\n, \\r\\n and a lone \\r, as
    Python's csv module counts them; read in chunks."""
    f.seek(0)
    count, last = 0, b""
    while end > 0 and (chunk := f.read(min(SCAN_CHUNK, end))):
        count += chunk.count(b"\n") + chunk.count(b"\r") - chunk.count(b"\r\n")
        count -= last == b"\r" and chunk[:1] == b"\n"  # a \r\n split between two chunks
        last, end = chunk[-1:], end - len(chunk)
    return count
