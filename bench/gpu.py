"""Throughput on a CUDA GPU, absolute numbers: an epoch of 60,000 images (linear
784->10 and MLP 784->100->10, batch 256, SGD lr 0.1, descent's Learner with the data
on the GPU as uint8), the vectorised lr sweep (16 rates at once, 3 epochs, linear), and
fit --by's many-curve Levenberg-Marquardt (10,000 groups of 20 rows, float64), each
beside the same job on this machine's CPU. Medians of `--repeats`; CUDA timings
synchronise before the clock is read. Without a CUDA GPU it says so and exits 0.

    python bench/gpu.py [--repeats 5] [--device cuda]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from common import machine_info, mnist_60k  # noqa: E402
from descent import Learner  # noqa: E402
from descent.data.batches import Batches  # noqa: E402
from descent.fitting.many import fit_many  # noqa: E402
from descent.models import MLP, PixelClassifier  # noqa: E402
from descent.tuning.sweep import lr_sweep  # noqa: E402
from many_curves import FORMULA, START, groups_data  # noqa: E402

BS, LR = 256, 0.1


def timed(fn, device: torch.device, repeats: int) -> float:
    fn()  # warm-up: kernels, caches, allocator
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def epoch(kind: str, x8, y, device):
    def run():
        model = PixelClassifier(784, 10) if kind == "linear" else MLP(784, 100, 10)
        learn = Learner(model, Batches(x8, y, BS, seed=0), loss="cross_entropy",
                        optimizer="sgd", lr=LR, progress=False, device=device)  # fmt: skip
        learn.fit(1)

    return run


def sweep(x8, y, device):
    def run():
        lr_sweep(PixelClassifier(784, 10), Batches(x8.to(device), y.to(device), BS, seed=0),
                 None, loss="cross_entropy", lrs=torch.logspace(-3, 0, 16).tolist(),
                 epochs=3)  # fmt: skip

    return run


def many(device):
    t, yv, gid = (v.to(device) for v in groups_data(10_000))

    def run():
        fit_many(FORMULA, t, yv, gid, START, FORMULA.params)

    return run


def main(argv=None) -> str:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        text = "bench/gpu.py: no CUDA GPU here; run it on a machine with one"
        print(text)
        return text
    gpu, cpu = torch.device(args.device), torch.device("cpu")
    x8, y = mnist_60k()
    lines = [machine_info(), f"GPU: {torch.cuda.get_device_name(gpu)}", "",
             f"{'job':<44}{'cpu':>12}{'gpu':>12}{'gpu speed-up':>14}"]  # fmt: skip
    jobs = {
        "linear 784->10, one epoch of 60,000": lambda d: epoch("linear", x8, y, d),
        "MLP 784->100->10, one epoch of 60,000": lambda d: epoch("mlp", x8, y, d),
        "lr sweep, 16 rates x 3 epochs, linear": lambda d: sweep(x8, y, d),
        "fit --by, 10,000 curves of 20 rows (LM)": many,
    }
    for name, make in jobs.items():
        c = timed(make(cpu), cpu, args.repeats)
        g = timed(make(gpu), gpu, args.repeats)
        lines.append(f"{name:<44}{c:>10.3f} s{g:>10.3f} s{c / g:>13.1f}x")
    n = len(x8)
    lines.append(f"\nsamples/s on the GPU: see the epoch rows ({n:,} samples each)")
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
