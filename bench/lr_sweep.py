"""Learning-rate sweep: 16 rates trained at once (descent.tuning.sweep) against one training
run of the same length and against 16 separate runs, on the bundled 3 vs 7 digits.

Setup: load_images("mnist-sample", classes=["3", "7"], valid_pct=0.2, seed=0) (809
training, 191 validation images, not deskewed), PixelClassifier(784, 1) from zeros,
BCE (what `descent train` uses for two classes), batch 128 (validation 1024), accuracy
on the validation set, 3 epochs, rates 1e-4 .. 10 log-spaced, Adam (train's default)
and plain SGD. "one run" is Learner(progress=False, guards=False).fit(3) at the middle
rate, model and learner built inside the timing, as the sweep builds its copies. The
sweep also runs through its generic path (torch.func.vmap, the model wrapped so it has
no forward_stacked). Times are medians of interleaved repeats with torch's default
threads. The sweep's per-rate final valid_loss is compared with the 16 separate runs'.

Info: the same for the 10-class MLP (784 -> 100 -> 10, cross-entropy, Adam), where the
K copies' matrix products and Adam steps dominate: on one CPU thread a sweep costs about
as much as K runs (it saves only the per-step overhead).

Acceptance (issue 6): the 16-rate sweep takes at most 3x one run.

    python bench/lr_sweep.py [--repeats 7] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from common import header, interleaved, table, verdict  # noqa: E402
from descent import Batches, Learner  # noqa: E402
from descent.data.images import load_images  # noqa: E402
from descent.models import MLP, PixelClassifier  # noqa: E402
from descent.tuning.sweep import lr_sweep, parse_lrs  # noqa: E402

EPOCHS = 3
LRS = parse_lrs("1e-4:10:16")


class Generic(nn.Module):
    """The model without forward_stacked: the sweep's vmap path."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def case(title, make, loss, optimizer, train, valid, repeats, generic=True):
    """Rows of the table for one model and optimizer, and the sweep / one-run ratio."""
    kw = dict(loss=loss, optimizer=optimizer, metrics=["accuracy"])

    def learner(lr: float) -> Learner:
        return Learner(make(), train, valid, lr=lr, progress=False, guards=False, **kw)

    def one_run() -> float:
        t0 = time.perf_counter()
        learner(LRS[8]).fit(EPOCHS)
        return time.perf_counter() - t0

    def sweep(wrap=lambda m: m, keep: list | None = None) -> float:
        t0 = time.perf_counter()
        result = lr_sweep(wrap(make()), train, valid, lrs=LRS, epochs=EPOCHS, **kw)
        if keep is not None:
            keep.append(result)
        return time.perf_counter() - t0

    def sixteen(keep: list | None = None) -> float:
        t0 = time.perf_counter()
        for lr in LRS:
            run = learner(lr)
            run.fit(EPOCHS)
            if keep is not None:
                keep.append(run.history[-1]["valid_loss"])
        return time.perf_counter() - t0

    variants = {"one run": one_run, "16-rate sweep": sweep, "16 separate runs": sixteen}
    if generic:
        variants["16-rate sweep, generic vmap path"] = lambda: sweep(Generic)
    secs = interleaved(variants, repeats)
    got, alone = [], []
    sweep(keep=got)
    sixteen(keep=alone)
    diffs = [abs(a - b) for a, b in zip(got[0].final_loss, alone, strict=True)]
    worst = max(range(len(LRS)), key=lambda i: diffs[i])
    one = secs["one run"]
    rows = [[title, name, 1e3 * s, s / one] for name, s in secs.items()]
    rows.append([title, f"max |final valid_loss - separate run's| (at lr {LRS[worst]:.3g})",
                 f"{diffs[worst]:.2e}", ""])  # fmt: skip
    # above the best rate training is chaotic: rounding (batched sums) grows; below, it stays
    calm = max(d for d, lr in zip(diffs, LRS, strict=True) if lr <= got[0].best_lr)
    rows.append([title, "the same, over rates up to the best", f"{calm:.2e}", ""])
    n_diverged = sum(d is not None for d in got[0].diverged)
    rows.append([title, f"best rate {got[0].best_lr:.3g}, {n_diverged} diverged", "", ""])
    return rows, secs["16-rate sweep"] / one


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="3 repeats, MLP once")
    args = ap.parse_args(argv)
    if args.quick:
        args.repeats = 3
    d2 = load_images("mnist-sample", classes=["3", "7"], valid_pct=0.2, seed=0)
    train2 = Batches(d2.train_x, d2.train_y, 128, seed=0)
    valid2 = Batches(d2.valid_x, d2.valid_y, 1024)
    rows, verdicts = [], []
    for optimizer in ("adam", "sgd"):
        r, ratio = case(f"3v7 linear, {optimizer}", lambda: PixelClassifier(784, 1), "bce",
                        optimizer, train2, valid2, args.repeats)  # fmt: skip
        rows += r
        verdicts.append(verdict(f"16-rate sweep / one run (3 vs 7, {optimizer})", ratio, 3.0,
                                higher_is_better=False))  # fmt: skip
    d10 = load_images("mnist-sample", valid_pct=0.2, seed=0)
    train10 = Batches(d10.train_x, d10.train_y, 128, seed=0)
    valid10 = Batches(d10.valid_x, d10.valid_y, 1024)
    r, ratio = case("10 digits MLP, adam", lambda: MLP(784, 100, 10, seed=0), "cross_entropy",
                    "adam", train10, valid10, 1 if args.quick else 3, generic=False)  # fmt: skip
    rows += r
    lines = header(f"Learning-rate sweep: 16 rates at once vs one run ({EPOCHS} epochs)")
    lines += [
        f"3 vs 7: {len(d2.train_x)} train / {len(d2.valid_x)} valid images; 10 digits: "
        f"{len(d10.train_x)} / {len(d10.valid_x)}. Medians of {args.repeats} interleaved "
        "repeats (MLP: 3, --quick 1), torch's default threads.",
        "",
        table(["case", "what", "ms", "ratio to one run"], rows),
        "",
        f"info: 10-digit MLP, 16-rate sweep / one run: {ratio:.2f}x "
        "(compute-bound: 16 copies' products)",
        *verdicts,
    ]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
