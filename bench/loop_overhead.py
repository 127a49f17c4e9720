"""Loop overhead: microseconds per step on the book's roller-coaster (20 points,
a*t**2 + b*t + c, MSE, plain SGD lr 1e-5, full batch, so one step = one epoch).

Four loops over the same data and starting parameters, interleaved across repeats:

- book: `loss.backward(); params.data -= lr * params.grad.data; params.grad = None`
- torch.optim.SGD: `loss.backward(); opt.step(); opt.zero_grad()`
- descent (on): Learner with the default guards (InterruptHandler, DivergenceGuard)
  and a ProgressDisplay writing to an in-memory Console, so the terminal is not timed
- descent (off): Learner(progress=False, guards=False)

Acceptance (issue 7): descent (on) <= 1.2x the book's loop.

    python bench/loop_overhead.py [--steps 2000] [--repeats 9] [--profile]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import torch
from rich.console import Console

sys.path.insert(0, str(Path(__file__).parent))
from common import header, interleaved, profile_per_step, table, verdict  # noqa: E402
from descent import Batches, Learner, ProgressDisplay  # noqa: E402
from descent.data.synthetic import quadratic, roller_coaster  # noqa: E402
from descent.models.function import FunctionModel  # noqa: E402

LR = 1e-5  # the book's


def book_loop(t, speed, init, steps: int) -> float:
    params = init.clone().requires_grad_()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = ((quadratic(t, params) - speed) ** 2).mean()
        loss.backward()
        params.data -= LR * params.grad.data
        params.grad = None
    return time.perf_counter() - t0


def sgd_loop(t, speed, init, steps: int) -> float:
    params = init.clone().requires_grad_()
    opt = torch.optim.SGD([params], lr=LR)
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = ((quadratic(t, params) - speed) ** 2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
    return time.perf_counter() - t0


def make_learner(t, speed, init, on: bool) -> Learner:
    model = FunctionModel(quadratic, ["a", "b", "c"], init)
    if on:
        display = ProgressDisplay(Console(file=io.StringIO(), width=100))
        return Learner(model, Batches(t, speed), loss="mse", lr=LR, callbacks=[display])
    return Learner(model, Batches(t, speed), loss="mse", lr=LR, progress=False, guards=False)


def descent_loop(t, speed, init, steps: int, on: bool) -> float:
    learner = make_learner(t, speed, init, on)
    t0 = time.perf_counter()
    learner.fit(steps)
    return time.perf_counter() - t0


def check_same_losses(t, speed, init) -> float:
    """The largest relative difference of the parameters after 50 steps, descent vs
    the book's loop (both are plain SGD on the same loss: it should be ~1e-7)."""
    params = init.clone().requires_grad_()
    for _ in range(50):
        loss = ((quadratic(t, params) - speed) ** 2).mean()
        loss.backward()
        params.data -= LR * params.grad.data
        params.grad = None
    learner = make_learner(t, speed, init, on=True)
    learner.fit(50)
    ours = learner.model.params.detach()
    return float(((ours - params.detach()).abs() / params.detach().abs()).max())


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--quick", action="store_true", help="500 steps, 5 repeats")
    ap.add_argument("--profile", action="store_true", help="also cProfile descent (on)")
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.repeats = 500, 5
    t, speed = roller_coaster(42)  # (20,), (20,) float32
    init = torch.randn(3, generator=torch.Generator().manual_seed(42))
    n = args.steps
    variants = {
        "book loop": lambda: book_loop(t, speed, init, n),
        "torch.optim.SGD loop": lambda: sgd_loop(t, speed, init, n),
        "descent (progress + guards on)": lambda: descent_loop(t, speed, init, n, on=True),
        "descent (progress + guards off)": lambda: descent_loop(t, speed, init, n, on=False),
    }
    secs = interleaved(variants, args.repeats)
    book = secs["book loop"]
    rows = [[name, 1e6 * s / n, s / book] for name, s in secs.items()]
    lines = header("Loop overhead: the roller-coaster, µs per step (full batch)")
    lines += [
        f"{n} steps per run, median of {args.repeats} interleaved runs, torch default threads; "
        "a descent step is a whole epoch (predict, loss, backward, SGD step, epoch record, "
        "history, stop rules).",
        "",
        table(["loop", "µs/step", "ratio to book"], rows),
        "",
        f"same parameters as the book's loop after 50 steps: max rel. diff "
        f"{check_same_losses(t, speed, init):.1e}",
        "",
        verdict(
            "descent (on) vs book loop",
            secs["descent (progress + guards on)"] / book,
            1.2,
            higher_is_better=False,
        ),  # fmt: skip
    ]
    if args.profile:
        lines += ["", "### cProfile of descent (on), per step (cProfile inflates small calls)", ""]
        lines.append(profile_per_step(lambda: descent_loop(t, speed, init, n, on=True), n, top=25))
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
