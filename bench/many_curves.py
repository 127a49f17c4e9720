"""Many curves at once: one formula fitted to every group of rows by one vectorised
Levenberg-Marquardt (descent.fitting.many.fit_many) against a loop of
scipy.optimize.curve_fit (and, for information, lmfit) over the same groups.

Setup: y = a exp(-b t) + c, 20 rows per group (t = 0..4), a in [1, 3], b in [0.5, 2],
c in [-0.5, 0.5] drawn per group, Gaussian noise 0.02, seed 0; every fit starts from
(a, b, c) = (1, 1, 0). Each side is timed at two sizes and the marginal cost per
group is (T(large) - T(small)) / (large - small), so start-up and import costs cancel.
Times are medians of interleaved repeats. The acceptance figure runs descent on one
thread, the resources of the curve_fit loop it is compared with (on a shared 2-core
machine, two threads also fight other processes); torch's default threads are shown
as information. Every group's parameters are compared with its own curve_fit, run
with tight tolerances (ftol = xtol = 1e-14) for that check.

Acceptance (issue 15): descent's marginal cost per group is at most 1/30 of
curve_fit's, at 2,000 and 10,000 groups.

    python bench/many_curves.py [--repeats 5] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import curve_fit

sys.path.insert(0, str(Path(__file__).parent))
from common import header, interleaved, table, verdict  # noqa: E402
from descent.fitting.many import fit_many  # noqa: E402
from descent.models.formula import parse_formula  # noqa: E402

ROWS = 20
FORMULA = parse_formula("a*exp(-b*t)+c", ["t"])
START = [1.0, 1.0, 0.0]


def groups_data(n_groups: int, seed: int = 0):
    """(t (N,), y (N,), group codes (N,)) for n_groups groups of ROWS rows, float64."""
    g = torch.Generator().manual_seed(seed)
    a = 1 + 2 * torch.rand(n_groups, generator=g, dtype=torch.float64)
    b = 0.5 + 1.5 * torch.rand(n_groups, generator=g, dtype=torch.float64)
    c = torch.rand(n_groups, generator=g, dtype=torch.float64) - 0.5
    t = torch.linspace(0, 4, ROWS, dtype=torch.float64).repeat(n_groups)
    gid = torch.arange(n_groups).repeat_interleave(ROWS)
    noise = 0.02 * torch.randn(n_groups * ROWS, generator=g, dtype=torch.float64)
    return t, a[gid] * torch.exp(-b[gid] * t) + c[gid] + noise, gid


def decay(t, a, b, c):
    return a * np.exp(-b * t) + c


def descent_fit(data, device="cpu"):
    t, y, gid = (v.to(device) for v in data)
    return fit_many(FORMULA.as_function(), t, y, gid, START, FORMULA.params)


def scipy_fits(data, tight: bool = False) -> np.ndarray:
    t, y, _ = data
    tol = {"ftol": 1e-14, "xtol": 1e-14} if tight else {}
    t_np, y_np = t.numpy().reshape(-1, ROWS), y.numpy().reshape(-1, ROWS)
    out = np.empty((len(y_np), 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for g in range(len(y_np)):
            out[g] = curve_fit(decay, t_np[g], y_np[g], p0=START, **tol)[0]
    return out


def lmfit_fits(data) -> None:
    import lmfit

    t, y, _ = data
    t_np, y_np = t.numpy().reshape(-1, ROWS), y.numpy().reshape(-1, ROWS)
    model = lmfit.Model(decay)
    for g in range(len(y_np)):
        model.fit(y_np[g], model.make_params(a=1.0, b=1.0, c=0.0), t=t_np[g])


def timed(fn, *args):
    def run() -> float:
        t0 = time.perf_counter()
        fn(*args)
        return time.perf_counter() - t0

    return run


def marginal(times: dict, small: int, large: int, key: str) -> float:
    return (times[f"{key} {large}"] - times[f"{key} {small}"]) / (large - small)


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="1,000 and 4,000 groups, 3 repeats")
    args = ap.parse_args(argv)
    small, large = (1_000, 4_000) if args.quick else (2_000, 10_000)
    repeats = 3 if args.quick else args.repeats
    data = {n: groups_data(n) for n in (small, large)}

    # agreement: every group's parameters against its own (tightly converged) curve_fit
    ours = descent_fit(data[small])
    theirs = scipy_fits(data[small], tight=True)
    rel = (ours.params.numpy() - theirs) / np.abs(theirs)
    worst = float(np.nanmax(np.abs(rel)))
    stopped = Counter(ours.stopped)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    variants = {}
    for n in (small, large):
        variants[f"descent {n}"] = timed(descent_fit, data[n])
        variants[f"curve_fit {n}"] = timed(scipy_fits, data[n])
    times = interleaved(variants, repeats, warmup=1)
    per_ours = marginal(times, small, large, "descent")
    per_scipy = marginal(times, small, large, "curve_fit")
    torch.set_num_threads(threads)
    default = interleaved({f"descent {n}": timed(descent_fit, data[n]) for n in data}, repeats)
    per_default = marginal(default, small, large, "descent")

    lm_small, lm_large = small // 10, small // 2
    lm = interleaved(
        {f"lmfit {n}": timed(lmfit_fits, groups_data(n)) for n in (lm_small, lm_large)}, 1, 0
    )
    per_lmfit = marginal(lm, lm_small, lm_large, "lmfit")

    rows = [
        [f"{n:,} groups", 1e3 * times[f"descent {n}"], 1e3 * times[f"curve_fit {n}"]]
        for n in (small, large)
    ]
    rows.append(["marginal µs / group", 1e6 * per_ours, 1e6 * per_scipy])
    lines = header("Many curves at once: fit_many vs a curve_fit loop")
    lines += [
        f"{ROWS} rows per group, a*exp(-b*t)+c, start (1, 1, 0); medians of {repeats} "
        "interleaved repeats; descent on one thread, like the curve_fit loop.",
        "",
        table(["", "descent fit_many ms", "curve_fit loop ms"], rows),
        "",
        f"stopped at {small:,} groups: {dict(stopped)}; max relative difference from "
        f"curve_fit's parameters over all groups: {worst:.2e}",
        f"info: descent with torch's default {threads} threads: {1e6 * per_default:.2f} µs / "
        f"group marginal; lmfit loop "
        f"({lm_small} and {lm_large} groups, one run): {1e6 * per_lmfit:.0f} µs / group",
    ]
    if torch.cuda.is_available():
        gpu = interleaved({f"gpu {n}": timed(_gpu_fit, data[n]) for n in data}, repeats)
        per_gpu = marginal(gpu, small, large, "gpu")
        lines.append(f"info: {torch.cuda.get_device_name()}: {1e6 * per_gpu:.2f} µs / group")
    lines += [
        "",
        verdict(
            "many curves: curve_fit's marginal cost per group / fit_many's",
            per_scipy / per_ours,
            30.0,
        ),
        f"{'PASS' if worst < 1e-6 else 'FAIL'} many curves: every group's parameters equal "
        f"its own curve_fit (ftol = xtol = 1e-14) to {worst:.1e} relative (target < 1e-6)",
    ]
    text = "\n".join(lines)
    print(text)
    return text


def _gpu_fit(data):
    descent_fit(data, "cuda")
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
