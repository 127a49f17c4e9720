"""Parquet tables -> checked float columns, by the same rules as text tables.

Columns of integers, floats or decimals are numbers (null and NaN are missing values,
infinities are problems); columns of strings are checked cell by cell like CSV text; any
other type (dates, booleans, lists, ...) is refused by name. Rows are numbered from 1 (a
Parquet file has no header line). Row groups are read one at a time, so memory holds the
requested columns plus one group.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from descent.data.table_cells import CellChecker
from descent.errors import DataError

SUFFIXES = frozenset({".parquet", ".pq"})


def open_parquet(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        raise DataError(
            f"{path}: not a readable Parquet file ({err}); write it with "
            "pandas.DataFrame.to_parquet or pyarrow.parquet.write_table, or give a CSV"
        ) from None


def header(path: Path, pf: pq.ParquetFile) -> list[str]:
    names = pf.schema_arrow.names
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DataError(
            f"{path}: column name(s) {', '.join(twice)} appear more than once; give every "
            "column a distinct name"
        )
    return names


def check_types(path: Path, pf: pq.ParquetFile, wanted: list[str]) -> None:
    """Numbers and strings can be read as numbers; anything else is named and refused."""
    schema = pf.schema_arrow
    for name in wanted:
        t = schema.field(name).type
        numeric = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
        text = pa.types.is_string(t) or pa.types.is_large_string(t)
        if not (numeric or text):
            raise DataError(
                f'{path}: column "{name}" ({schema.names.index(name) + 1}) holds {t} values, '
                "not numbers; choose columns of numbers"
            )


def read_rows(
    pf: pq.ParquetFile, checker: CellChecker, on_rows: Callable[[int], None]
) -> CellChecker:
    """Every row group through the checker; rows are numbered from 1."""
    wanted = list(checker.index)
    start = 1
    for group in range(pf.num_row_groups):
        table = pf.read_row_group(group, columns=wanted)
        n = table.num_rows
        cells = {}
        for name in wanted:
            column = table.column(name)
            if pa.types.is_large_string(column.type):
                column = column.cast(pa.string())
            cells[name] = column.combine_chunks()  # (n,)
        checker.add(np.arange(start, start + n), cells)
        start += n
        on_rows(start - 1)
    return checker
