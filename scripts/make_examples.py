"""Writes the small CSV files in examples/ that the README's curve-fitting sections use
(seeded, so the files and the README's output are reproducible):

- decay.csv: y = 3 exp(-0.8 x) + 0.4 with noise that grows with x, and each row's
  standard uncertainty err (for --sigma);
- peaks.csv: two Gaussian peaks on a sloping line (a composite formula);
- sensors.csv: one decay per sensor, 6 sensors of 4 to 30 rows, in file order by time
  (for --by); the sensor "spare" has 2 rows, too few for 3 parameters.

    python scripts/make_examples.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "examples"


def write(name: str, header: list[str], rows) -> None:
    lines = [",".join(header)] + [",".join(f"{v:.6g}" if isinstance(v, float) else str(v)
                                           for v in row) for row in rows]  # fmt: skip
    (OUT / name).write_text("\n".join(lines) + "\n")


def main() -> None:
    rng = np.random.default_rng(15)
    OUT.mkdir(exist_ok=True)
    x = np.linspace(0, 5, 40)
    err = 0.02 + 0.03 * x / 5
    y = 3 * np.exp(-0.8 * x) + 0.4 + err * rng.standard_normal(40)
    write("decay.csv", ["x", "y", "err"], zip(x, y, err, strict=True))

    x = np.linspace(0, 10, 120)
    peaks = 2.0 * np.exp(-((x - 3.5) ** 2) / (2 * 0.6**2)) + 1.2 * np.exp(
        -((x - 6.0) ** 2) / (2 * 0.9**2)
    )
    y = peaks + 0.05 * x + 0.3 + 0.05 * rng.standard_normal(120)
    write("peaks.csv", ["x", "y"], zip(x, y, strict=True))

    rows = []
    for name, n in [("north", 12), ("south", 30), ("east", 4), ("west", 20), ("roof", 25),
                    ("spare", 2)]:  # fmt: skip
        a, k, c = 1 + 2 * rng.random(), 0.5 + 1.5 * rng.random(), rng.random() - 0.5
        t = np.sort(4 * rng.random(n))
        v = a * np.exp(-k * t) + c + 0.02 * rng.standard_normal(n)
        rows += [(name, float(ti), float(vi)) for ti, vi in zip(t, v, strict=True)]
    rows.sort(key=lambda r: r[1])
    write("sensors.csv", ["sensor", "t", "v"], rows)


if __name__ == "__main__":
    main()
