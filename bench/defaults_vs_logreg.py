"""Do descent's default settings carry to other images? `descent train SOURCE` with every
default against scikit-learn's LogisticRegression (its defaults, pixels scaled to [0, 1])
on the same train/validation split, on each image set:

- the bundled MNIST sample, all ten digits and 3 vs 7;
- scikit-learn's 8x8 digits, and three sets made from installed packages
  (bench/image_sets.py), each written as a folder of `<label>/*.png`.

The acceptance (issue 17): descent's validation accuracy >= LogisticRegression's - 0.5
points on every set. LogisticRegression is also fitted with max_iter=5000 (its default,
100, can stop before lbfgs converges); the better of the two is the reference.

A second table shows why the defaults are what they are: descent with deskewing forced
on and off, the automatic decision, and the epochs run (--quick skips it).

    python bench/defaults_vs_logreg.py [--quick] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

from rich.console import Console
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).parent))
from common import header, table  # noqa: E402
from descent.commands.config import TrainConfig  # noqa: E402
from descent.commands.train import train_command  # noqa: E402
from descent.data.images import load_images  # noqa: E402
from image_sets import SETS, write_set  # noqa: E402

TARGET = -0.5  # points: descent - LogisticRegression


def logreg_accuracy(source: str, classes: list[str] | None, max_iter: int = 100) -> tuple:
    """(validation accuracy, seconds, iterations) of LogisticRegression on the split that
    `descent train` makes (load_images with its defaults: seeded 20%, before classes)."""
    d = load_images(source, classes=classes)
    x = d.train_x.reshape(len(d.train_x), -1).numpy() / 255.0  # (n, h*w) in [0, 1]
    vx = d.valid_x.reshape(len(d.valid_x), -1).numpy() / 255.0
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter=100: reported below
        clf = LogisticRegression(max_iter=max_iter).fit(x, d.train_y.numpy())
    seconds = time.perf_counter() - t0
    return float(clf.score(vx, d.valid_y.numpy())), seconds, int(clf.n_iter_.max())


def descent_run(source: str, classes: list[str] | None, tmp: str, **settings) -> dict:
    t0 = time.perf_counter()
    out = tempfile.mkdtemp(dir=tmp)
    cfg = TrainConfig(source=source, classes=classes, out=out, quiet=True, **settings)
    r = train_command(cfg, Console(quiet=True))
    return {
        "accuracy": r.valid_accuracy,
        "seconds": time.perf_counter() - t0,
        "epochs": r.fit_result.epochs,
        "best": r.fit_result.best_epoch,
        "stopped": r.fit_result.stopped,
        # what the run decided, as model.json records it for prediction
        "deskewed": json.loads((Path(out) / "model.json").read_text())["preprocessing"]["deskew"],
    }


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="only the default runs")
    ap.add_argument("--data", help="folder for the image sets (default: a temporary one)")
    args = ap.parse_args(argv)
    lines = header("Default settings on other images: descent train vs LogisticRegression")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.data or tmp)
        sources = [
            ("MNIST sample, 10 digits (28x28)", "mnist-sample", None),
            ("MNIST sample, 3 vs 7 (28x28)", "mnist-sample", ["3", "7"]),
        ]
        for name in SETS:
            folder = write_set(name, root)
            size = "x".join(map(str, load_images(folder).size))
            sources.append((f"{name} ({size})", str(folder), None))
        rows, checks, verdicts = [], [], []
        for label, source, classes in sources:
            ours = descent_run(source, classes, tmp)
            acc100, sec100, it100 = logreg_accuracy(source, classes)
            acc5k, _, _ = logreg_accuracy(source, classes, max_iter=5000)
            ref = max(acc100, acc5k)
            diff = 100 * (ours["accuracy"] - ref)
            rows.append(
                [
                    label,
                    f"{ours['accuracy']:.4f}",
                    f"{acc100:.4f}" + (" (not converged)" if it100 >= 100 else ""),
                    f"{acc5k:.4f}",
                    f"{diff:+.2f}",
                    "yes" if ours["deskewed"] else "no",
                    f"{ours['epochs']} ({ours['stopped']}, best {ours['best']})",
                    f"{ours['seconds']:.1f}",
                    f"{sec100:.1f}",
                ]
            )
            verdicts.append(
                f"{'PASS' if diff >= TARGET else 'FAIL'} {label}: descent defaults - "
                f"LogisticRegression {diff:+.2f} points (target >= {TARGET:g})"
            )
            if not args.quick:
                on = descent_run(source, classes, tmp, deskew=True)
                off = descent_run(source, classes, tmp, deskew=False)
                best = "deskewed" if on["accuracy"] > off["accuracy"] else "raw"
                checks.append(
                    [
                        label,
                        f"{on['accuracy']:.4f} ({on['epochs']} ep)",
                        f"{off['accuracy']:.4f} ({off['epochs']} ep)",
                        "deskewed" if ours["deskewed"] else "raw",
                        best if on["accuracy"] != off["accuracy"] else "tie",
                        f"{100 * (off['accuracy'] - ref):+.2f}",
                    ]
                )
    heads = [
        "image set",
        "descent (defaults)",
        "LogReg()",
        "LogReg(max_iter=5000)",
        "descent - best LogReg (points)",
        "deskewed",
        "epochs (stop, best)",
        "descent s",
        "LogReg s",
    ]
    lines += [table(heads, rows), ""]
    if checks:
        lines += [
            "Deskewing forced on and off (other settings default), against the automatic choice:",
            "",
            table(
                [
                    "image set",
                    "--deskew",
                    "--no-deskew",
                    "auto chose",
                    "better",
                    "--no-deskew - best LogReg (points, same pixels)",
                ],
                checks,
            ),
            "",
        ]
    lines += verdicts
    lines += [
        "",
        "descent: `descent train SOURCE` defaults (linear, Adam 3e-3, batch 128, early "
        "stopping on valid_loss with patience 5, at most 300 epochs, deskew decided on the "
        "validation images). LogReg: LogisticRegression() (C=1, L2, lbfgs), raw pixels / 255.",
        "descent s: the whole run (loading, training, checkpoints, plots); LogReg s: the fit.",
    ]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
