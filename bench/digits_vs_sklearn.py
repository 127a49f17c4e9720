"""descent's per-pixel linear classifier beside scikit-learn's LogisticRegression
on the same split of the bundled MNIST sample (seeded 20% validation).

Both are linear softmax (or logistic) models on the same pixels; scikit-learn
is given the same preprocessing as descent (deskewed) and also the raw pixels.
Prints validation accuracy, the difference in points, and fit time.

    python bench/digits_vs_sklearn.py
"""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from pathlib import Path

from rich.console import Console
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).parent))
from common import machine_info, table  # noqa: E402
from descent.commands.config import TrainConfig  # noqa: E402
from descent.commands.train import train_command  # noqa: E402
from descent.data.images import load_images  # noqa: E402
from descent.data.preprocess import deskew  # noqa: E402


def sklearn_accuracy(data, pre: bool) -> tuple[float, float]:
    tx, vx = data.train_x, data.valid_x
    if pre:
        tx, vx = deskew(tx), deskew(vx)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = LogisticRegression(max_iter=2000).fit(
            tx.reshape(len(tx), -1).numpy() / 255.0, data.train_y.numpy()
        )
    seconds = time.perf_counter() - t0
    return float(clf.score(vx.reshape(len(vx), -1).numpy() / 255.0, data.valid_y.numpy())), seconds


def main(argv=None) -> str:
    import argparse

    ap = argparse.ArgumentParser(description="descent linear vs LogisticRegression")
    ap.add_argument("--quick", action="store_true", help="(the same: it takes a minute)")
    ap.parse_args(argv)
    lines = ["## Digits: descent linear vs scikit-learn LogisticRegression", "", machine_info(), ""]
    rows = []
    for name, classes in (("3 vs 7", ["3", "7"]), ("10 digits", None)):
        data = load_images("mnist-sample", classes=classes, valid_pct=0.2, seed=0)
        results = {}
        for label, deskewed in (("deskewed", True), ("raw pixels", False)):
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                cfg = TrainConfig(classes=classes, deskew=deskewed, quiet=True, out=tmp)
                r = train_command(cfg, Console(quiet=True))
            results[f"descent ({label})"] = (r.valid_accuracy, time.perf_counter() - t0)
            results[f"sklearn ({label})"] = sklearn_accuracy(data, deskewed)
        for label in ("deskewed", "raw pixels"):
            ours, theirs = results[f"descent ({label})"], results[f"sklearn ({label})"]
            rows.append(
                [name, label, ours[0], theirs[0], 100 * (ours[0] - theirs[0]), ours[1], theirs[1]]
            )
    lines.append(
        table(
            [
                "task",
                "pixels",
                "descent acc",
                "sklearn acc",
                "descent - sklearn (points)",
                "descent s",
                "sklearn s",
            ],
            rows,
        )
    )
    lines += [""] + [
        f"{'PASS' if r[4] >= -1.0 else 'FAIL'} {r[0]} ({r[1]}): descent - sklearn "
        f"{r[4]:+.2f} points (target >= -1)"
        for r in rows
    ]
    lines += ["", "descent: defaults (Adam 3e-3, batch 128, early stopping on valid_loss)."]
    lines += ["sklearn: LogisticRegression(max_iter=2000), default C=1.0 (L2), lbfgs."]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
