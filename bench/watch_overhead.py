"""Watch overhead: the cost of `--watch` with a page open, on two trainings.

- 3 vs 7: the bundled digits 3 and 7 (about 1,000 images, so an epoch is a few
  batches and the per-epoch work of the feed weighs most), PixelClassifier(784, 1),
  the book's mnist loss, SGD lr 1.0, batches of 256;
- 60,000 images: the bundled digits tiled and shifted (common.mnist_60k),
  PixelClassifier(784, 10), cross-entropy, SGD lr 0.1, batches of 256.

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

    python bench/watch_overhead.py [--repeats 7] [--quick]
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
from descent.models import PixelClassifier  # noqa: E402
from descent.watch.callback import StopRequest, WatchFeed  # noqa: E402
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


def compare(job: tuple, log: EventLog, repeats: int) -> dict[str, list[tuple[float, float]]]:
    """(wall, cpu) of every unwatched fit, of every unwatched fit again (the same thing:
    how far apart two measurements of it fall is the noise floor), and of every watched
    fit, in a rotating order (round r runs the three, starting from the r-th)."""
    x, y, k, lr, loss, epochs = job
    names = ["off", "off (again)", "watched"]
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    timed_fit(x, y, k, lr, loss, epochs, None)  # warm-up
    for r in range(repeats):
        for name in names[r % 3 :] + names[: r % 3]:
            times[name].append(
                timed_fit(x, y, k, lr, loss, epochs, log if name == "watched" else None)
            )
    return times


def spread(values: list[float]) -> str:
    """'min-max' of a list of ratios, for the table."""
    return f"{min(values):.3f}-{max(values):.3f}"


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="4 repeats, shorter runs")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (see above)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    repeats = 4 if args.quick else args.repeats
    x37, y37 = three_vs_seven()
    x60, y60 = mnist_60k()  # (60000, 28, 28) uint8, (60000,)
    jobs = {  # name: (x, y, outputs, lr, loss, epochs)
        "3 vs 7": (x37, y37, 1, 1.0, "mnist", 50 if args.quick else 200),
        "60,000 images": (x60, y60, 10, 0.1, "cross_entropy", 2 if args.quick else 5),
    }
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
            for name, job in jobs.items():
                times = compare(job, log, repeats)
                off_w = [w for w, _ in times["off"]]
                off_c = [c for _, c in times["off"]]
                epochs, steps = job[-1], job[-1] * -(-len(job[0]) // 256)
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
    lines = header("Watch overhead: training with the live page open")
    lines += [
        f"median of {repeats} interleaved runs; the page is a separate process reading "
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
