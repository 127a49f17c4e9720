"""Shared helpers for the benchmarks: machine information, timing, tables.

Every benchmark compares alternatives measured in the same run and prints the
ratios; figures from different runs are never compared."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence

import torch


def machine_info() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return (
        f"machine: {cpu}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}"
    )


def median_time(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of fn() over `repeats` runs, after `warmup` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (readable in a terminal and in RESULTS.md)."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += [
        "| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells
    ]
    return "\n".join(lines)


def _fmt(c: object) -> str:
    if isinstance(c, float):
        return f"{c:.4g}" if abs(c) < 1e5 else f"{c:,.0f}"
    return str(c)


# --- added for issue 7's suite: headers, verdicts, data, profiles ----------------------


def header(title: str) -> list[str]:
    """The lines every benchmark starts with: title, machine, load average, threads."""
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return [f"## {title}", "", machine_info(), f"load average (1, 5, 15 min): {load}", ""]


def verdict(what: str, ratio: float, target: float, higher_is_better: bool = True) -> str:
    """One acceptance line: 'PASS what: 3.9x (target >= 3.5x)'."""
    ok = ratio >= target if higher_is_better else ratio <= target
    sign = ">=" if higher_is_better else "<="
    return f"{'PASS' if ok else 'FAIL'} {what}: {ratio:.2f}x (target {sign} {target:g}x)"


def interleaved(
    variants: dict[str, Callable[[], float]], repeats: int, warmup: int = 1
) -> dict[str, float]:
    """Median of each variant's result (a time) over `repeats` rounds; every round runs
    all variants, in a rotating order, so drift in the machine's load hits all alike."""
    samples = interleaved_samples(variants, repeats, warmup)
    return {name: statistics.median(v) for name, v in samples.items()}


def interleaved_samples(
    variants: dict[str, Callable[[], object]], repeats: int, warmup: int = 1
) -> dict[str, list]:
    """Every round's result of each variant, `interleaved`'s rounds: result i of every
    variant comes from round i."""
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            variants[name]()
    results: dict[str, list] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            results[name].append(variants[name]())
    return results


def mnist_60k(n: int = 60_000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 28, 28) uint8 images and (n,) int64 labels: the bundled 5,000 MNIST digits
    tiled to n, each copy rolled by a random shift of up to 2 pixels each way.

    Made in uint8 throughout: no float copy of the images ever exists."""
    from descent.data.images import load_images

    data = load_images("mnist-sample", valid_pct=0.0)
    base_x, base_y = data.train_x, data.train_y  # (5000, 28, 28) uint8, (5000,)
    x = torch.empty((n, *base_x.shape[1:]), dtype=torch.uint8)
    y = torch.empty(n, dtype=torch.int64)
    gen = torch.Generator().manual_seed(seed)
    m = len(base_x)
    for i in range(0, n, m):
        k = min(m, n - i)
        dy, dx = torch.randint(-2, 3, (2,), generator=gen).tolist()
        x[i : i + k] = base_x[:k].roll((dy, dx), dims=(1, 2))
        y[i : i + k] = base_y[:k]
    return x, y


def profile_per_step(fn: Callable[[], object], steps: int, top: int = 15) -> str:
    """cProfile of fn(), as a Markdown table of the `top` functions by own time,
    in microseconds per step (fn runs `steps` steps)."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    stats = pstats.Stats(prof).stats  # (file, line, name) -> (cc, nc, tt, ct, callers)
    rows = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    out = []
    for (file, line, name), (_, ncalls, tottime, cumtime, _) in rows:
        where = f"{os.path.basename(file)}:{line}" if line else "~"
        out.append(
            [f"{name} ({where})", ncalls / steps, 1e6 * tottime / steps, 1e6 * cumtime / steps]
        )
    return table(["function", "calls/step", "own µs/step", "cum µs/step"], out)
