"""Learning-rate sweep: 16 rates trained at once (descent.sweep) against one training
run of the same length and against 16 separate runs, on the bundled 3 vs 7 digits.

Setup: `descent train mnist-sample --classes 3,7` defaults (linear, BCE, deskewed,
batch 128, seeded 20% validation split), 3 epochs, Adam (the default) and SGD, rates
1e-4 .. 10 log-spaced. Times are medians of interleaved repeats; "one run" is a
Learner built and trained as `descent train` does (no plots or files). The sweep's
per-rate losses are compared with the 16 separate runs'.

Acceptance (issue 6): the 16-rate sweep takes at most 3x one run.

    python bench/lr_sweep.py [--repeats 7] [--quick]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import header, interleaved, table, verdict  # noqa: E402
from descent.config import TrainConfig  # noqa: E402
from descent.sweep import lr_sweep, parse_lrs  # noqa: E402
from descent.train import make_learner, prepare_data  # noqa: E402

EPOCHS = 3


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="3 repeats")
    args = ap.parse_args(argv)
    if args.quick:
        args.repeats = 3
    base = TrainConfig(source="mnist-sample", classes=["3", "7"], quiet=True)
    data = prepare_data(base)
    lrs = parse_lrs("1e-4:10:16")
    lines = header("Learning-rate sweep: 16 rates at once vs one run (3 vs 7, 3 epochs)")
    rows, verdicts = [], []
    for optimizer in ("adam", "sgd"):
        cfg = replace(base, optimizer=optimizer)

        def one_run(lr=lrs[8], cfg=cfg):
            t0 = time.perf_counter()
            make_learner(cfg, data, lr).fit(EPOCHS)
            return time.perf_counter() - t0

        def sweep(cfg=cfg, keep: list | None = None):
            t0 = time.perf_counter()
            probe = make_learner(cfg, data, 1e-3)
            result = lr_sweep(probe.model, probe.train_batches, probe.valid_batches,
                              loss=probe.loss_func, lrs=lrs, epochs=EPOCHS,
                              optimizer=cfg.optimizer, metrics=probe.metrics)  # fmt: skip
            if keep is not None:
                keep.append(result)
            return time.perf_counter() - t0

        def sixteen(cfg=cfg, keep: list | None = None):
            t0 = time.perf_counter()
            for lr in lrs:
                learner = make_learner(cfg, data, lr)
                learner.fit(EPOCHS)
                if keep is not None:
                    keep.append(learner.history)
            return time.perf_counter() - t0

        secs = interleaved(
            {"one run": one_run, "16-rate sweep": sweep, "16 separate runs": sixteen},
            args.repeats,
        )
        got, alone = [], []
        sweep(keep=got)
        sixteen(keep=alone)
        diff = max(
            abs(a["valid_loss"] - b["valid_loss"]) / abs(b["valid_loss"])
            for h_s, h_a in zip(got[0].histories, alone, strict=True)
            for a, b in zip(h_s, h_a, strict=False)
            if math.isfinite(b["valid_loss"])
        )
        one = secs["one run"]
        for name, s in secs.items():
            rows.append([optimizer, name, 1e3 * s, s / one])
        rows.append([optimizer, "max rel. diff of valid_loss, sweep vs separate", diff, ""])
        rows.append([optimizer, f"best rate {got[0].best_lr:.3g}", "", ""])
        ratio = secs["16-rate sweep"] / one
        verdicts.append(verdict(f"{optimizer}: 16-rate sweep / one run", ratio, 3.0, False))
    lines += [
        f"median of {args.repeats} interleaved repeats; every run builds its model and "
        "learner from the same preprocessed data.",
        "",
        table(["optimizer", "what", "ms", "ratio to one run"], rows),
        "",
        *verdicts,
    ]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
