"""Large tables: read_table on a 200 MB two-column CSV (8.6M rows) against pandas.read_csv,
and the peak memory of the read.

- Time: `read_table(path, columns=["time", "speed"])` and `pandas.read_csv(path)` on the
  same file, interleaved (every round runs both, in a rotating order), after one warm-up
  each; medians and the spread (min-max) over the rounds. Target: descent <= 2x pandas.
- Memory: each reader in its own fresh process. The baseline is the resident memory after
  the imports and a read of a tiny CSV (thread pools, lazy imports); the read's figure is
  the peak above it: VmHWM from /proc/self/status, reset to the baseline through
  /proc/self/clear_refs (ru_maxrss would not do: Linux carries it over from the parent
  process across fork and exec). Target: <= 3x the float64 data (rows x 2 x 8 bytes).
- For information: the exact (second) read that places problems, on the same file with
  1% of one column "NA" read with drop_missing, and with one bad cell in the last row;
  and Parquet.

    python bench/tables.py [--quick] [--rows N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
from common import header, table, verdict  # noqa: E402

ROWS = 8_600_000  # the file: 200 MB, two columns

CHILD = textwrap.dedent(
    """
    import json, sys
    kind, path, tiny = sys.argv[1], sys.argv[2], sys.argv[3]

    def status_mb(field):
        with open("/proc/self/status") as f:
            line = next(l for l in f if l.startswith(field + ":"))
        return int(line.split()[1]) / 1024

    if kind == "descent":
        from descent.data.tables import read_table
        read = lambda p: read_table(p, columns=["time", "speed"])
    else:
        import pandas
        read = pandas.read_csv
    read(tiny)  # imports and thread pools are part of the baseline
    base = status_mb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS, so the peak is the read's own
    out = read(path)
    print(json.dumps({"base": base, "peak": status_mb("VmHWM")}))
    """
)


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    """time (s, 3 decimals) and speed (10 decimals): about 24 bytes a row."""
    rng = np.random.default_rng(seed)
    data = pa.table(
        {
            "time": np.round(np.arange(rows) * 1e-3, 3),
            "speed": np.round(rng.normal(0.0, 300.0, rows), 10),
        }
    )
    with open(path, "wb") as f:
        f.write(b"time,speed\n")
        pacsv.write_csv(data, f, pacsv.WriteOptions(include_header=False))


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def rounds(variants: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Every round times each variant once, in a rotating order; one warm-up each first."""
    names = list(variants)
    for name in names:
        variants[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(timed(variants[name]))
    return times


def peak(kind: str, path: Path, tiny: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, kind, str(path), str(tiny)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 rounds instead of 5")
    ap.add_argument("--rows", type=int, default=ROWS, help=f"rows in the CSV (default {ROWS:,})")
    args = ap.parse_args(argv)
    import pandas

    from descent.data.tables import read_table
    from descent.errors import DataError

    repeats = 3 if args.quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        path, tiny = Path(tmp) / "big.csv", Path(tmp) / "tiny.csv"
        write_csv(path, args.rows)
        tiny.write_text("time,speed\n0,1\n1,2\n")
        mb = path.stat().st_size / 2**20
        data_mb = args.rows * 2 * 8 / 2**20  # float64 columns

        times = rounds(
            {
                "descent read_table": lambda: read_table(path, columns=["time", "speed"]),
                "pandas.read_csv": lambda: pandas.read_csv(path),
            },
            repeats,
        )
        mem = {kind: peak(kind, path, tiny) for kind in ("descent", "pandas")}

        # For information: the exact read (problems placed by line) and Parquet.
        lines = path.read_bytes().split(b"\n")
        na = lines[:1] + [
            (line.split(b",")[0] + b",NA") if i % 100 == 7 else line
            for i, line in enumerate(lines[1:])
        ]
        with_na = Path(tmp) / "na.csv"
        with_na.write_bytes(b"\n".join(na))
        bad = Path(tmp) / "bad.csv"
        bad.write_bytes(b"\n".join(lines[:-2] + [lines[-2].split(b",")[0] + b",abc", b""]))
        del lines, na
        parquet = Path(tmp) / "big.parquet"
        pq.write_table(pacsv.read_csv(path), parquet)

        def bad_read() -> None:
            try:
                read_table(bad)
            except DataError:
                return
            raise AssertionError("the bad cell was not found")

        info = [
            [
                "1% NA, drop_missing (exact read)",
                timed(lambda: read_table(with_na, drop_missing=True)),
            ],
            ["one bad cell in the last row (exact read)", timed(bad_read)],
            ["Parquet (same data)", timed(lambda: read_table(parquet))],
            ["pandas.read_parquet", timed(lambda: pandas.read_parquet(parquet))],
        ]

    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["descent read_table"] / med["pandas.read_csv"]
    rows = [[k, statistics.median(v), min(v), max(v), len(v)] for k, v in times.items()]
    added = {k: m["peak"] - m["base"] for k, m in mem.items()}
    lines_out = header("Large tables: a 200 MB two-column CSV")
    lines_out += [
        f"file: {args.rows:,} rows, {mb:.0f} MB; float64 data {data_mb:.1f} MB; "
        f"pandas {pandas.__version__}, pyarrow {pa.__version__}",
        "",
        table(["reader", "median s", "min s", "max s", "rounds"], rows),
        "",
        table(
            ["reader (own process)", "baseline MB", "peak MB", "added MB", "added / data"],
            [[k, m["base"], m["peak"], added[k], added[k] / data_mb] for k, m in mem.items()],
        ),
        "",
        table(["for information", "s"], info),
        "",
        verdict("read_table / pandas.read_csv (time, medians)", ratio, 2, higher_is_better=False),
        verdict(
            "read_table peak memory / float64 data",
            added["descent"] / data_mb,
            3,
            higher_is_better=False,
        ),
    ]
    text = "\n".join(lines_out)
    print(text)
    return text


if __name__ == "__main__":
    main()
