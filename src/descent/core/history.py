"""Per-epoch records: {"epoch", "train_loss", "valid_loss", "valid_<metric>", "time"}.

The learner appends one record per epoch; this module holds them and turns them into
CSV text and JSON rows (io/ writes the files).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator


class History:
    """A list of per-epoch records (dicts of floats), with column access."""

    def __init__(self, rows: list[dict[str, float]] | None = None) -> None:
        self.rows: list[dict[str, float]] = list(rows or [])

    def append(self, row: dict[str, float]) -> None:
        self.rows.append(dict(row))

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, float]]:
        return iter(self.rows)

    def __getitem__(self, i: int) -> dict[str, float]:
        return self.rows[i]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, History) and _same_rows(self.rows, other.rows)

    @property
    def columns(self) -> list[str]:
        cols: list[str] = []
        for row in self.rows:
            cols += [k for k in row if k not in cols]
        return cols

    def column(self, name: str) -> list[float]:
        return [row.get(name, math.nan) for row in self.rows]

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self.columns, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: _fmt(v) for k, v in row.items()})
        return out.getvalue()

    def to_records(self) -> list[dict[str, float]]:
        """JSON-ready rows (non-finite numbers become None)."""
        return [{k: _json_num(v) for k, v in row.items()} for row in self.rows]

    def __repr__(self) -> str:
        return f"History({len(self.rows)} epochs, columns={self.columns})"


def _fmt(v: float) -> str:
    if isinstance(v, int):
        return str(v)
    return repr(float(v))  # shortest text that reads back to the same float


def _json_num(v: float) -> float | int | None:
    if isinstance(v, int):
        return v
    return v if math.isfinite(v) else None


def _same_rows(a: list[dict], b: list[dict]) -> bool:
    ignore = {"time"}  # wall time differs between otherwise identical runs
    strip = [{k: v for k, v in r.items() if k not in ignore} for r in a]
    other = [{k: v for k, v in r.items() if k not in ignore} for r in b]
    return len(strip) == len(other) and all(
        x.keys() == y.keys() and all(_num_eq(x[k], y[k]) for k in x)
        for x, y in zip(strip, other, strict=True)
    )


def _num_eq(x: float, y: float) -> bool:
    return x == y or (
        isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)
    )
