"""Reading CSV/TSV/Parquet tables: delimiters, exact values, errors that name file, row, column."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from rich.console import Console

from descent.data import table_text, tables
from descent.data.tables import check_enough_rows, read_table
from descent.errors import DataError

NIST = Path("/work/shared/nist")


def write(tmp_path: Path, text: str, name: str = "data.csv", raw: bytes | None = None) -> Path:
    path = tmp_path / name
    path.write_bytes(raw if raw is not None else text.encode())
    return path


def error(path: Path, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        read_table(path, **kwargs)
    message = str(info.value)
    assert path.name in message  # every message names the file
    return message


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("comma.csv", "time,speed\n0,1.5\n1,2.5\n2,-3e-2\n"),
        ("tab.tsv", "time\tspeed\n0\t1.5\n1\t2.5\n2\t-3e-2\n"),
        ("semi.csv", "time;speed\n0;1.5\n1;2.5\n2;-3e-2\n"),
        ("spaces.txt", "time   speed\n  0  1.5\n1 2.5   \n2\t-3e-2\n"),
        ("quoted.csv", '"time", "speed"\r\n0, "1.5"\r\n1,2.5\r\n2,-3e-2'),
    ],
)
def test_delimiters(tmp_path, name, text):
    table = read_table(write(tmp_path, text, name))
    assert table.header == ["time", "speed"] and table.n_rows == 3
    assert table.columns["time"].tolist() == [0.0, 1.0, 2.0]
    assert table.columns["speed"].tolist() == [1.5, 2.5, -0.03]
    assert table.columns["speed"].dtype == torch.float64


def test_bom_blank_lines_and_column_subset(tmp_path):
    text = "\n\nname,x,y\n\na,1,2\n   \nb,3,4\n,,\n\n"
    path = write(tmp_path, "", raw=b"\xef\xbb\xbf" + text.encode())
    table = read_table(path, columns=["y", "x"])  # text column "name" is never parsed
    assert table.header == ["name", "x", "y"] and list(table.columns) == ["y", "x"]
    assert table.n_rows == 2 and table.columns["x"].tolist() == [1.0, 3.0]
    x, y = table.select("x", "y")
    assert x.shape == (2,) and y.tolist() == [2.0, 4.0]
    x2, _ = table.select(["x", "y"], "y")
    assert x2.shape == (2, 2) and x2[:, 1].tolist() == [2.0, 4.0]
    assert table.select(["x"], "y")[0].shape == (2,)
    with pytest.raises(DataError, match='"name" was not read'):
        table.select("name", "y")
    assert read_table(path, columns=["x"], dtype=torch.float32).columns["x"].dtype == torch.float32


def test_values_round_trip_exactly():
    path = NIST / "Misra1a.csv"
    if not path.exists():
        pytest.skip("NIST data not available")
    expected = np.loadtxt(path, delimiter=",", skiprows=1)
    table = read_table(path)
    assert table.header == ["y", "x"] and table.n_rows == len(expected)
    assert np.array_equal(table.columns["y"].numpy(), expected[:, 0])
    assert np.array_equal(table.columns["x"].numpy(), expected[:, 1])


def test_many_digits_round_trip(tmp_path):
    values = [0.1, 1 / 3, 2.0**-1074, 1.7976931348623157e308, -123456789.123456789]
    path = write(tmp_path, "v\n" + "\n".join(repr(v) for v in values) + "\n")
    assert read_table(path).columns["v"].tolist() == values


def test_file_not_found_and_empty(tmp_path):
    write(tmp_path, "x,y\n1,2\n", "coaster.csv")
    message = error(tmp_path / "coastr.csv")
    assert "not found" in message and "coaster.csv" in message
    assert "is empty" in error(write(tmp_path, "\n \n"))
    assert "is a folder" in str(pytest.raises(DataError, read_table, tmp_path).value)


def test_header_only(tmp_path):
    message = error(write(tmp_path, "time,speed\n\n"))
    assert "no data rows" in message and "time, speed" in message


def test_header_required(tmp_path):
    message = error(write(tmp_path, "1.5,2\n3,4\n"))
    assert "row 1" in message and "1.5, 2" in message and "header row" in message


def test_duplicate_and_empty_column_names(tmp_path):
    message = error(write(tmp_path, "x,y,x,\n1,2,3,4\n"))
    assert "header row 1" in message
    assert 'column 3 is "x" again (also column 1)' in message
    assert "column 4 has no name" in message


def test_ragged_rows(tmp_path):
    message = error(write(tmp_path, "x,y\n1,2\n\n3\n4,5,6\n7,8\n"))
    assert "row 4: expected 2 cells (x, y) like the header, found 1" in message
    assert "row 5: expected 2 cells (x, y) like the header, found 3" in message


def test_text_in_numeric_column_lists_every_bad_cell(tmp_path):
    rows = [f"{i},{i * 2}" for i in range(20)]
    rows[5] = "5,abc"  # line 7
    rows[9] = "1_000,9"  # line 11: underscores are not accepted
    rows[12] = "1,5"  # fine, just two cells
    text = "time,speed\n" + "\n".join(rows) + "\n"
    message = error(write(tmp_path, text))
    assert 'row 7, column "speed" (2): "abc" is not a number' in message
    assert 'row 11, column "time" (1): "1_000" is not a number' in message
    many = "a,b\n" + "\n".join(f"x{i},1" for i in range(25))
    message = error(write(tmp_path, many, "many.csv"))
    assert 'row 2, column "a" (1): "x0"' in message and 'row 11, column "a"' in message
    assert 'row 12, column "a"' not in message and "and 15 more" in message


def test_decimal_comma_hint(tmp_path):
    message = error(write(tmp_path, "a;b\n1,5;2\n"))
    assert 'row 2, column "a" (1): "1,5" is not a number (write decimals with a point)' in message


def test_infinite_values(tmp_path):
    message = error(write(tmp_path, "x,y\n1,2\n3,-inf\n1e999,4\n"))
    assert 'row 3, column "y" (2): "-inf" is infinite' in message
    assert 'row 4, column "x" (1): "1e999" is infinite' in message


def test_missing_values_error_then_drop(tmp_path):
    text = "x,y,note\n1,2,\n2,NA,\n3,,\n4,nan,\n5, N/A ,\n6,7,\n-,8,\n"
    path = write(tmp_path, text)
    message = error(path)  # the empty "note" column counts: all columns are requested
    assert "missing value(s)" in message and "--drop-missing" in message
    message = error(path, columns=["x", "y"])
    assert "5 missing value(s) in 5 row(s)" in message
    assert 'row 3, column "y" (2): "NA"' in message and 'row 4, column "y" (2): empty' in message
    assert 'row 8, column "x" (1): "-"' in message
    table = read_table(path, columns=["x", "y"], drop_missing=True)
    assert table.n_rows == 2 and table.dropped_rows == [3, 4, 5, 6, 8]
    assert table.columns["x"].tolist() == [1.0, 6.0] and table.columns["y"].tolist() == [2.0, 7.0]
    message = error(path, columns=["note"], drop_missing=True)
    assert "nothing is left" in message


def test_missing_column_suggests_close_match(tmp_path):
    path = write(tmp_path, "time,speed\n1,2\n")
    message = error(path, columns=["time", "sped"])
    assert 'no column named "sped"' in message and 'Did you mean "speed"' in message
    assert "time, speed" in message
    with pytest.raises(DataError, match='no column named "z"'):
        read_table(path).select("time", "z")


def test_not_utf8(tmp_path):
    message = error(write(tmp_path, "", raw=b"x,y\n1,\xff\n"))
    assert "UTF-8" in message


def test_check_enough_rows():
    check_enough_rows(3, 3, "a.csv")
    with pytest.raises(DataError, match=r"a\.csv: 2 data row\(s\) but the model has 3 parameters"):
        check_enough_rows(2, 3, "a.csv")


def test_control_characters_are_shown_escaped(tmp_path):
    message = error(write(tmp_path, "x,y\n1,2\n3,\0\n"))
    assert 'row 3, column "y" (2): "\\x00" is not a number' in message


# --- pyarrow reading: the fast read, the exact read and its batches, Parquet, progress ---


def test_exact_read_matches_fast_read(tmp_path, monkeypatch):
    """The second (exact) read gives the same table as pyarrow's fast read on clean files."""
    texts = {
        "comma.csv": 'x,"y",name\n1,2.5,a\n\n-3e-2,4,"b,c"\n',
        "tab.tsv": "x\ty\tname\n1\t2.5\ta\n\n-3e-2\t4\tb c\n",
        "semi.csv": "x;y;name\r\n1;2.5;a\r\n-3e-2;4;b\r\n",
    }
    fast = {n: read_table(write(tmp_path, t, n), columns=["y", "x"]) for n, t in texts.items()}
    monkeypatch.setattr(table_text, "_fast", lambda *args: None)
    for name in texts:
        exact = read_table(tmp_path / name, columns=["y", "x"])
        assert exact.n_rows == fast[name].n_rows == 2
        for col in ("x", "y"):
            assert exact.columns[col].tolist() == fast[name].columns[col].tolist()


@pytest.mark.parametrize("quoted", [False, True])
def test_row_numbers_across_batches(tmp_path, monkeypatch, quoted):
    """Blank lines and many small batches: dropped rows and problems keep file line numbers."""
    monkeypatch.setattr(table_text, "LINE_BLOCK", 256)  # bytes per batch of lines
    monkeypatch.setattr(table_text, "BATCH_ROWS", 7)  # rows per batch of the csv module
    lines, expected_dropped, values = ["x,y"], [], []
    for i in range(300):
        if i % 13 == 0:
            lines.append("")
        y = "NA" if i % 17 == 3 else str(i)
        lines.append(f'{i},"{y}"' if quoted else f"{i},{y}")
        if y == "NA":
            expected_dropped.append(len(lines))
        else:
            values.append(float(i))
    path = write(tmp_path, "\n".join(lines) + "\n")
    table = read_table(path, drop_missing=True)
    assert table.dropped_rows == expected_dropped and table.columns["y"].tolist() == values
    lines[200] = "oops,1"
    message = error(write(tmp_path, "\n".join(lines) + "\n", "bad.csv"), drop_missing=True)
    assert "1 problem(s)" in message and 'row 201, column "x" (1): "oops"' in message


def test_quoted_newlines_keep_line_numbers(tmp_path):
    path = write(tmp_path, 'x,note\n1,"two\nlines"\n2,plain\n')
    table = read_table(path, columns=["x"])
    assert table.columns["x"].tolist() == [1.0, 2.0]
    message = error(write(tmp_path, 'x,note\n1,"two\nlines"\nabc,c\n', "bad.csv"), columns=["x"])
    assert 'row 4, column "x" (1): "abc" is not a number' in message


def test_whitespace_table_with_missing_values(tmp_path):
    path = write(tmp_path, "t   v\n0  1.5\n\n1  NA\n 2\t3\n", "data.txt")
    message = error(path)
    assert 'row 4, column "v" (2): "NA"' in message
    table = read_table(path, drop_missing=True)
    assert table.dropped_rows == [4] and table.columns["v"].tolist() == [1.5, 3.0]


def test_a_line_longer_than_a_block_is_still_read(tmp_path, monkeypatch):
    monkeypatch.setattr(table_text, "LINE_BLOCK", 64)  # pyarrow cannot split a longer line
    used = []
    by_csv_module = table_text._by_csv_module
    monkeypatch.setattr(
        table_text, "_by_csv_module", lambda *a: used.append(1) or by_csv_module(*a)
    )
    path = write(tmp_path, f"x,note\n1,{'n' * 500}\nNA,b\n")
    table = read_table(path, columns=["x"], drop_missing=True)
    assert table.columns["x"].tolist() == [1.0] and table.dropped_rows == [3] and used


def test_not_utf8_names_row_and_byte(tmp_path):
    message = error(write(tmp_path, "", raw=b"x,y\n1,2\n3,\xff\n"))
    assert "row 3 is not UTF-8 text (byte 10)" in message


def test_header_only_columns(tmp_path):
    table = read_table(write(tmp_path, "a,b,c\n1,2,x\n3,4,y\n"), columns=[])
    assert table.header == ["a", "b", "c"] and table.columns == {} and table.n_rows == 2
    message = error(write(tmp_path, "a,b\n1,2\n3\n", "ragged.csv"), columns=[])
    assert "row 3: expected 2 cells (a, b) like the header, found 1" in message


def test_progress_bar_on_a_terminal_only(tmp_path, monkeypatch, capsys):
    path = write(tmp_path, "x,y\n" + "".join(f"{i},{i}\n" for i in range(1000)))
    assert read_table(path).n_rows == 1000  # small file, not a terminal: nothing printed
    monkeypatch.setattr(tables, "PROGRESS_BYTES", 100)
    assert read_table(path).n_rows == 1000  # big enough, but stderr is not a terminal
    assert capsys.readouterr() == ("", "")
    screen = io.StringIO()
    monkeypatch.setattr(tables, "Console", lambda stderr: Console(file=screen, force_terminal=True))
    assert read_table(path).n_rows == 1000
    assert f"reading {path.name}" in screen.getvalue()


def write_parquet(path: Path, **columns) -> Path:
    pq.write_table(pa.table(columns), path, row_group_size=3)
    return path


def test_parquet_columns_and_row_groups(tmp_path):
    x = np.arange(10, dtype=np.int64)
    path = write_parquet(tmp_path / "data.parquet", x=x, y=x * 0.5, name=[str(i) for i in x])
    table = read_table(path, columns=["y", "x"])
    assert table.header == ["x", "y", "name"] and table.n_rows == 10
    assert table.columns["x"].tolist() == x.tolist() and table.columns["y"].dtype == torch.float64
    assert read_table(path, columns=["name"]).columns["name"].tolist() == x.tolist()  # text
    pq_path = write_parquet(tmp_path / "short.pq", a=[1.0, 2.0])
    assert read_table(pq_path, dtype=torch.float32).columns["a"].dtype == torch.float32


def test_parquet_messages(tmp_path):
    path = write_parquet(
        tmp_path / "data.parquet",
        x=pa.array([1.0, None, 3.0, float("nan"), 5.0]),
        y=pa.array([1, 2, 3, 4, 5]),
        flag=pa.array([True, False, True, False, True]),
        note=pa.array(["1", "2", "abc", "4", "inf"]),
    )
    message = error(path, columns=["x", "y"])
    assert "2 missing value(s) in 2 row(s)" in message
    assert 'row 2, column "x" (1): null' in message and 'row 4, column "x" (1): "nan"' in message
    table = read_table(path, columns=["x", "y"], drop_missing=True)
    assert table.dropped_rows == [2, 4] and table.columns["y"].tolist() == [1.0, 3.0, 5.0]
    message = error(path, columns=["flag"])
    assert 'column "flag" (3) holds bool values, not numbers' in message
    message = error(path, columns=["note"])
    assert 'row 3, column "note" (4): "abc" is not a number' in message
    assert 'row 5, column "note" (4): "inf" is infinite' in message
    message = error(path, columns=["x", "z"])
    assert 'no column named "z"' in message and "x, y, flag, note" in message
    broken = write(tmp_path, "x,y\n1,2\n", "broken.parquet")
    assert "not a readable Parquet file" in error(broken)
