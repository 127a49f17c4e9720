"""Watch overhead: the cost of `--watch` with a page open, on two trainings and one
many-curves fit.

- 3 vs 7: the bundled digits 3 and 7 (about 1,000 images, so an epoch is a few
  batches and the per-epoch work of the feed weighs most), PixelClassifier(784, 1),
  the book's mnist loss, SGD lr 1.0, batches of 256;
- 60,000 images: the bundled digits tiled and shifted (common.mnist_60k),
  PixelClassifier(784, 10), cross-entropy, SGD lr 0.1, batches of 256;
- fit --by, 1,000 groups: a*exp(-k*x)+c fitted to 1,000 groups of 20 rows by
  fit_many, watched through its on_step hook (watch/groups.py's GroupsFeed, 6 curves
  drawn, the page's interval), as `descent fit --by --watch` does.

Each is timed without watching (the default Learner, progress off, as `--quiet`) and
with watching: WatchFeed (default intervals) and StopRequest attached, the
WatchServer running and a page open: a separate process reading the event stream,
so the server encodes and sends everything the page would get. Runs are interleaved
and the medians compared: wall time, and the process's CPU time (training and server
threads together; less disturbed by other load on a shared machine).
Acceptance (issue 16): watched <= 1.05x unwatched, in wall time.

Torch runs on --threads (default 1) threads: with as many torch threads as cores, any
other runnable thread or process (the reader here, a browser drawing the page) stalls
every parallel region of the step, a cost of sharing the machine that has nothing to
do with watching; on a 2-core machine that swamps what is measured here.

    python bench/watch_overhead.py [--repeats 7] [--quick] [--only --by]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import header, mnist_60k, table, verdict  # noqa: E402
from descent import Batches, Learner  # noqa: E402
from descent.data.images import load_images  # noqa: E402
from descent.fitting.many import fit_many  # noqa: E402
from descent.models import PixelClassifier  # noqa: E402
from descent.models.formula import parse_formula  # noqa: E402
from descent.watch.callback import StopRequest, WatchFeed  # noqa: E402
from descent.watch.groups import GroupSample, GroupsFeed  # noqa: E402
from descent.watch.log import EventLog  # noqa: E402
from descent.watch.server import WatchServer  # noqa: E402

READER = """
import sys, urllib.request
stream = urllib.request.urlopen(sys.argv[1], timeout=600)
print(stream.readline().decode().strip(), flush=True)  # the stream has begun
while stream.read1(65536):
    pass
"""


def three_vs_seven():
    data = load_images("mnist-sample", valid_pct=0.2)
    keep = (data.train_y == data.labels.index("3")) | (data.train_y == data.labels.index("7"))
    x = data.train_x[keep]  # (n, 28, 28) uint8
    y = (data.train_y[keep] == data.labels.index("7")).float()[:, None]  # (n, 1)
    return x, y


def make_learner(x, y, k: int, lr: float, loss: str, callbacks=()) -> Learner:
    model = PixelClassifier(784, k, init_std=1.0 if k == 1 else 0.0, seed=0)
    batches = Batches(x, y, 256, seed=0)
    return Learner(model, batches, loss=loss, lr=lr, progress=False, callbacks=callbacks)


def timed_fit(x, y, k, lr, loss, epochs, log: EventLog | None) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one fit."""
    callbacks = [] if log is None else [WatchFeed(log, "bench"), StopRequest()]
    learner = make_learner(x, y, k, lr, loss, callbacks)
    t0, c0 = time.perf_counter(), time.process_time()
    learner.fit(epochs)
    return time.perf_counter() - t0, time.process_time() - c0


DECAY = parse_formula("a*exp(-k*x)+c", ["x"])


def many_groups(n_groups: int = 1000, rows: int = 20):
    """(x, y, groups) of n_groups noisy decays of `rows` rows each, seeded."""
    g = torch.Generator().manual_seed(0)
    x = (5 * torch.rand(n_groups, rows, generator=g, dtype=torch.float64)).sort(1).values
    a, k, c = (torch.rand(3, n_groups, 1, generator=g, dtype=torch.float64) + 0.5).unbind(0)
    y = a * torch.exp(-k * x) + c - 1 + 0.02 * torch.randn(x.shape, generator=g, dtype=x.dtype)
    groups = torch.arange(n_groups).repeat_interleave(rows)
    return x.reshape(-1), y.reshape(-1), groups


def timed_groups(x, y, groups, log: EventLog | None) -> tuple[float, float]:
    """(wall, CPU) of one fit_many over the groups, watched as fit --by --watch is
    (the feed made inside the timing, as the command makes it) or not."""
    t0, c0 = time.perf_counter(), time.process_time()
    feed = None
    if log is not None:
        n = int(groups.max()) + 1

        def samples():  # made at the first picture, as the command's are
            out = []
            for g in range(0, n, n // 6)[:6]:
                rows = (groups == g).nonzero().flatten()
                grid = torch.linspace(float(x[rows].min()), float(x[rows].max()), 100)
                out.append(GroupSample(g, str(g), x[rows], y[rows], grid.double(), grid))
            return out

        feed = GroupsFeed(log, "bench-by", names=DECAY.params, labels=[str(i) for i in range(n)],
                          samples=samples, curve=DECAY, n_rows=len(y))  # fmt: skip
    fit_many(DECAY, x, y, groups, [1.0, 1.0, 0.0], DECAY.params, on_step=feed)
    return time.perf_counter() - t0, time.process_time() - c0


def compare(run, log: EventLog, repeats: int) -> dict[str, list[tuple[float, float]]]:
    """(wall, cpu) of every unwatched fit, of every unwatched fit again (the same thing:
    how far apart two measurements of it fall is the noise floor), and of every watched
    fit, in a rotating order (round r runs the three, starting from the r-th); `run(log)`
    times one fit (log None: unwatched)."""
    names = ["off", "off (again)", "watched"]
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    run(None)  # warm-up
    for r in range(repeats):
        for name in names[r % 3 :] + names[: r % 3]:
            times[name].append(run(log if name == "watched" else None))
    return times


def spread(values: list[float]) -> str:
    """'min-max' of a list of ratios, for the table."""
    return f"{min(values):.3f}-{max(values):.3f}"


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="4 repeats, shorter runs")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (see above)")
    ap.add_argument("--only", help="only the jobs whose name contains this, e.g. '--by'")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    repeats = 4 if args.quick else args.repeats
    wanted = lambda name: args.only is None or args.only in name  # noqa: E731
    trainings = {}  # name: (x, y, outputs, lr, loss, epochs)
    if wanted("3 vs 7"):
        x37, y37 = three_vs_seven()
        trainings["3 vs 7"] = (x37, y37, 1, 1.0, "mnist", 50 if args.quick else 200)
    if wanted("60,000 images"):
        x60, y60 = mnist_60k()  # (60000, 28, 28) uint8, (60000,)
        trainings["60,000 images"] = (x60, y60, 10, 0.1, "cross_entropy", 2 if args.quick else 5)
    jobs = {  # name: (run(log) -> (wall, cpu), epochs, steps)
        name: (lambda log, job=job: timed_fit(*job, log), job[-1], job[-1] * -(-len(job[0]) // 256))
        for name, job in trainings.items()
    }
    xg, yg, gg = many_groups()
    steps = max(fit_many(DECAY, xg, yg, gg, [1.0, 1.0, 0.0], DECAY.params).steps.tolist())
    if wanted("fit --by, 1,000 groups"):
        jobs["fit --by, 1,000 groups"] = (lambda log: timed_groups(xg, yg, gg, log), "-", steps)
    log = EventLog()
    with WatchServer(log) as server:
        page = subprocess.Popen(
            [sys.executable, "-c", READER, server.url.replace("/?", "/events?")],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert page.stdout.readline().startswith("retry"), "the page did not connect"
        try:
            rows, verdicts = [], []
            for name, (run, epochs, steps) in jobs.items():
                times = compare(run, log, 3 * repeats if "--by" in name else repeats)
                off_w = [w for w, _ in times["off"]]
                off_c = [c for _, c in times["off"]]
                for what in ("off (again)", "watched"):
                    wall = [w for w, _ in times[what]]
                    cpu = [c for _, c in times[what]]
                    # per round: this run against the unwatched run of the same round
                    ratios = [a / b for a, b in zip(wall, off_w, strict=True)]
                    rows.append(
                        [name, what, epochs, steps, statistics.median(off_w),
                         statistics.median(wall),
                         statistics.median(wall) / statistics.median(off_w),
                         spread(ratios), statistics.median(cpu) / statistics.median(off_c)]
                    )  # fmt: skip
                ratio = statistics.median([w for w, _ in times["watched"]]) / statistics.median(
                    off_w
                )
                verdicts.append(verdict(f"--watch with a page open, {name}", ratio, 1.05, False))
            sent = len(log)
        finally:
            page.kill()
            page.wait()
    lines = header("Watch overhead: training and fit --by with the live page open")
    lines += [
        f"median of {repeats} interleaved runs ({3 * repeats} for fit --by, a short job); "
        "the page is a separate process reading "
        f"/events ({sent} events sent in all); torch {torch.get_num_threads()} threads.",
        "",
        table(
            [
                "training",
                "run",
                "epochs",
                "steps",
                "off s",
                "run s",
                "ratio",
                "ratio per round (min-max)",
                "CPU ratio",
            ],
            rows,
        ),  # fmt: skip
        "",
        "'off (again)' repeats the unwatched run: its ratio, and its spread per round, are",
        "the noise of this machine. ratio = median watched / median unwatched (wall time).",
        "",
        *verdicts,
    ]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
