"""Training throughput: samples per second for one epoch of 60,000 28x28 images,
batch 256, plain SGD lr 0.1, cross-entropy, on a linear 784->10 classifier and
an MLP 784->100->10.

Data: the bundled 5,000 MNIST digits tiled to 60,000, each copy rolled by a
random shift of up to 2 pixels (common.mnist_60k), uint8. descent trains on the
uint8 tensor (converted per batch); the other torch loops get the float32 copy
x / 255, made once outside the timing. Loops, interleaved across repeats:

- descent: Learner(PixelClassifier(784, 10) or MLP(784, 100, 10), Batches(x_uint8,
  y, 256, seed=0), loss cross_entropy, sgd lr 0.1), guards on (the defaults),
  progress off as `descent train --quiet` runs it; and with a ProgressDisplay
  writing to an in-memory Console as `descent train` runs it. Both take step 4 by
  hand (the fused gradient, core/fused.py), as descent chooses for these models;
  `descent --autograd` is the same learner with fused=False (loss.backward())
- DataLoader: DataLoader(TensorDataset(x_float, y), batch_size=256, shuffle=True),
  nn.Linear / nn.Sequential, torch.optim.SGD
- preloaded: the same model and optimizer, batches x_float[perm[i:i+256]]
- hand-written gradient (linear): softmax - one-hot, two addmm_, no autograd, on
  descent's own uint8 batches and weight layout (the fastest loop without autograd)
- compute floor: the epoch's matrix products alone (forward, and the backward
  products autograd needs: dW for every layer, dX for all but the first)
  on preallocated contiguous float batches, each in its fastest layout (timed
  first, by layout), then timed as one loop in the same rounds as the others
- scikit-learn SGDClassifier(loss="log_loss", max_iter=1) on float64 x / 255, in the
  same rounds (linear)

Every ratio is taken round by round (both loops timed in the same round), and the
table gives its median and, in brackets, its range over the rounds.
- fastai Learner, from a separate venv (--fastai-python, default
  /tmp/fastai-venv/bin/python) when there is one

    python bench/throughput.py [--repeats 5] [--quick] [--profile] [--threads N]
                               [--fastai-python PY]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).parent))
from common import (  # noqa: E402
    header,
    interleaved,
    interleaved_samples,
    mnist_60k,
    profile_per_step,
    table,
    verdict,
)
from descent import Batches, Learner, ProgressDisplay  # noqa: E402
from descent.models import MLP, PixelClassifier  # noqa: E402

BS, LR = 256, 0.1
FASTAI_PYTHON = "/tmp/fastai-venv/bin/python"  # --fastai-python


def torch_net(kind: str) -> nn.Module:
    torch.manual_seed(0)
    if kind == "linear":
        return nn.Linear(784, 10)
    return nn.Sequential(nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10))


def descent_epoch(x8, y, kind: str, progress: bool = False, fused: bool | None = None) -> float:
    """One epoch of descent's Learner; fused None: as descent chooses (the fused
    gradient for these models), False: autograd (`descent train --autograd`)."""
    model = PixelClassifier(784, 10) if kind == "linear" else MLP(784, 100, 10)
    cbs = [ProgressDisplay(Console(file=io.StringIO(), width=100))] if progress else []
    learner = Learner(model, Batches(x8, y, BS, seed=0), loss="cross_entropy", optimizer="sgd",
                      lr=LR, callbacks=cbs, progress=False, fused=fused)  # fmt: skip
    t0 = time.perf_counter()
    learner.fit(1)
    return time.perf_counter() - t0


def _train(net, opt, batches) -> float:
    t0 = time.perf_counter()
    for xb, yb in batches:
        loss = F.cross_entropy(net(xb), yb)
        loss.backward()
        opt.step()
        opt.zero_grad()
    return time.perf_counter() - t0


def dataloader_epoch(xf, y, kind: str) -> float:
    net = torch_net(kind)
    dl = DataLoader(TensorDataset(xf, y), batch_size=BS, shuffle=True)
    return _train(net, torch.optim.SGD(net.parameters(), lr=LR), dl)


def preloaded_epoch(xf, y, kind: str) -> float:
    net = torch_net(kind)
    perm = torch.randperm(len(xf))
    batches = ((xf[idx], y[idx]) for idx in perm.split(BS))  # drawn lazily, inside the timing
    return _train(net, torch.optim.SGD(net.parameters(), lr=LR), batches)


def u8_select_epoch(x8, y, kind: str) -> float:
    """What descent's design allows: uint8 data gathered with index_select, scaled
    inside the first product (addmm's alpha), weights in nn.Linear's (out, in) layout."""
    net = torch_net(kind)
    first = net if kind == "linear" else net[0]
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    x2 = x8.reshape(len(x8), -1)  # (n, 784) uint8, a view
    t0 = time.perf_counter()
    for idx in torch.randperm(len(x8)).split(BS):
        xb, yb = x2.index_select(0, idx).float(), y.index_select(0, idx)
        out = torch.addmm(first.bias, xb, first.weight.t(), alpha=1 / 255)
        out = out if kind == "linear" else net[2](torch.relu(out))
        loss = F.cross_entropy(out, yb)
        loss.backward()
        opt.step()
        opt.zero_grad()
    return time.perf_counter() - t0


def handwritten_epoch(x8, y) -> float:
    """The linear model with its gradient written out (softmax - one-hot), no autograd,
    on the batches descent sees (uint8, index_select, weights (k, 784)); the batch
    losses are kept and synced once, as descent keeps them. The best a loop that
    gives up autograd can do here: descent's step 4 is autograd by design."""
    x2 = x8.reshape(len(x8), -1)
    w, b = torch.zeros(10, 784), torch.zeros(10)
    losses = []
    t0 = time.perf_counter()
    for idx in torch.randperm(len(x2)).split(BS):
        xb, yb = x2.index_select(0, idx).float(), y.index_select(0, idx)
        logp = torch.addmm(b[:, None], w, xb.t(), alpha=1 / 255).log_softmax(0)  # (10, bs)
        losses.append(F.nll_loss(logp.t(), yb))
        g = logp.exp_()  # softmax; minus one-hot = d loss / d scores, times bs
        g[yb, torch.arange(len(yb))] -= 1
        w.addmm_(g, xb, alpha=-LR / (255 * len(yb)))  # (10, bs) @ (bs, 784)
        b.sub_(g.sum(1), alpha=LR / len(yb))
    float(torch.stack(losses).mean())
    return time.perf_counter() - t0


def matmul_products(kind: str) -> dict[str, dict[str, object]]:
    """The products of one training step, each in the layouts it can be computed in:
    {product: {layout: f(xb) -> result}}. w is (in, out) row-major, wt its (out, in)
    transpose (nn.Linear's layout); g the gradient at a layer's output."""
    gen = torch.Generator().manual_seed(0)
    hidden = 10 if kind == "linear" else 100
    w1 = torch.randn(784, hidden, generator=gen)
    w1t, g1 = w1.t().contiguous(), torch.randn(BS, hidden, generator=gen)
    prods = {
        "forward x @ W1": {"x @ w": lambda xb: xb @ w1, "x @ wt.t()": lambda xb: xb @ w1t.t(),
                           "(wt @ x.t()).t()": lambda xb: (w1t @ xb.t()).t()},
        "dW1 = x.t() @ g": {"x.t() @ g": lambda xb: xb.t() @ g1[: len(xb)],
                            "(g.t() @ x).t()": lambda xb: (g1[: len(xb)].t() @ xb).t()},
    }  # fmt: skip
    if kind == "linear":
        return prods
    w2 = torch.randn(100, 10, generator=gen)
    w2t, g2, h = w2.t().contiguous(), torch.randn(BS, 10, generator=gen), torch.rand(BS, 100)
    prods["forward h @ W2"] = {
        "h @ w": lambda xb: h[: len(xb)] @ w2,
        "h @ wt.t()": lambda xb: h[: len(xb)] @ w2t.t(),
        "(wt @ h.t()).t()": lambda xb: (w2t @ h[: len(xb)].t()).t(),
    }
    prods["dW2 = h.t() @ g"] = {
        "h.t() @ g": lambda xb: h[: len(xb)].t() @ g2[: len(xb)],
        "(g.t() @ h).t()": lambda xb: (g2[: len(xb)].t() @ h[: len(xb)]).t(),
    }
    prods["dH = g @ W2.t()"] = {
        "g @ wt": lambda xb: g2[: len(xb)] @ w2t,
        "(w @ g.t()).t()": lambda xb: (w2 @ g2[: len(xb)].t()).t(),
    }
    return prods  # fmt: skip


def floor_layouts(xbs, kind: str, repeats: int) -> tuple[list, list[list]]:
    """The fastest layout of each of the epoch's matrix products, over preallocated
    contiguous float batches (dX of the first layer is not needed). Returns (the
    fastest function of each product, rows of µs per batch for every layout)."""

    def epoch(f):
        t0 = time.perf_counter()
        for xb in xbs:
            f(xb)
        return time.perf_counter() - t0

    prods = matmul_products(kind)
    variants = {
        (p, lay): (lambda f=f: epoch(f)) for p, lays in prods.items() for lay, f in lays.items()
    }
    secs = interleaved(variants, repeats)
    best = {p: min(lays, key=lambda lay, p=p: secs[p, lay]) for p, lays in prods.items()}
    rows = [[p, lay, 1e6 * secs[p, lay] / len(xbs), "fastest" if lay == best[p] else ""]
            for p, lays in prods.items() for lay in lays]  # fmt: skip
    return [prods[p][lay] for p, lay in best.items()], rows


def floor_epoch(xbs, fastest: list) -> float:
    """The compute floor: the epoch's products alone, each in its fastest layout."""
    t0 = time.perf_counter()
    for f in fastest:
        for xb in xbs:
            f(xb)
    return time.perf_counter() - t0


def sklearn_epoch(x64, y64) -> float:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import SGDClassifier

    clf = SGDClassifier(loss="log_loss", max_iter=1, tol=None, random_state=0)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x64, y64)
    return time.perf_counter() - t0


OURS, AUTOGRAD, FLOOR = "descent (guards on, progress off)", "descent --autograd", "compute floor"
DATALOADER, SKLEARN = "DataLoader(TensorDataset) loop", "scikit-learn SGDClassifier"


def compare(kind: str, x8, y, xf, repeats: int, x64=None) -> tuple[dict[str, list], list]:
    """Each loop's seconds per epoch for `kind` ("linear" or "mlp") in every round, and
    the floor's products by layout."""
    xbs = [b.contiguous() for b in xf.split(BS)]
    fastest, layouts = floor_layouts(xbs, kind, repeats)
    variants = {
        OURS: lambda: descent_epoch(x8, y, kind),
        "descent (progress to StringIO)": lambda: descent_epoch(x8, y, kind, progress=True),
        AUTOGRAD: lambda: descent_epoch(x8, y, kind, fused=False),
        DATALOADER: lambda: dataloader_epoch(xf, y, kind),
        "preloaded tensors, permutation slices": lambda: preloaded_epoch(xf, y, kind),
        "uint8 + index_select + (out, in) weights": lambda: u8_select_epoch(x8, y, kind),
        FLOOR: lambda: floor_epoch(xbs, fastest),
    }
    if kind == "linear":
        variants["hand-written gradient loop (no Learner)"] = lambda: handwritten_epoch(x8, y)
    if x64 is not None:
        variants[SKLEARN] = lambda: sklearn_epoch(x64, y.numpy())
    return interleaved_samples(variants, repeats), layouts


def ratio(samples: dict[str, list], num: str, den: str) -> tuple[float, float, float]:
    """median, min and max over the rounds of samples[num][i] / samples[den][i]."""
    r = [a / b for a, b in zip(samples[num], samples[den], strict=True)]
    return statistics.median(r), min(r), max(r)


def report(title: str, samples: dict[str, list], extra: dict[str, float], n: int) -> list[str]:
    rows = []
    for name, secs in samples.items():
        med, lo, hi = ratio(samples, name, OURS)
        rows.append([name, f"{n / statistics.median(secs):,.0f}", f"{med:.2f} ({lo:.2f}-{hi:.2f})"])
    ours = statistics.median(samples[OURS])
    rows += [[name, f"{n / s:,.0f}", f"{s / ours:.2f}"] for name, s in extra.items()]
    headers = ["loop", "samples/s", "descent speed-up (range over rounds)"]
    return [f"### {title}", "", table(headers, rows), ""]


def target(what: str, samples: dict[str, list], num: str, den: str, goal: float) -> str:
    med, lo, hi = ratio(samples, num, den)
    return f"{verdict(what, med, goal)}; rounds {lo:.2f}-{hi:.2f}"


FASTAI_CHILD = """
import json, sys, time
import numpy as np, torch, torch.nn.functional as F
from torch import nn
from fastai.basics import SGD, DataLoader, DataLoaders, Learner
import fastai.callback.progress  # adds Learner.no_bar
d = np.load(sys.argv[1])
x = torch.from_numpy(d["x"]).reshape(len(d["x"]), -1).float() / 255
y = torch.from_numpy(d["y"])
repeats, out = int(sys.argv[2]), {"linear": {}, "mlp": {}}
feeds = {"fastai Learner, list(zip(x, y)) (fastbook ch. 4)": list(zip(x, y)),
         "fastai Learner, fastai DataLoader(TensorDataset)": torch.utils.data.TensorDataset(x, y)}
for kind in out:
    for name, dset in feeds.items():
        times = []
        for _ in range(repeats + 1):  # the first is a warm-up
            torch.manual_seed(0)
            net = nn.Linear(784, 10) if kind == "linear" else nn.Sequential(
                nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10))
            dls = DataLoaders(DataLoader(dset, bs=256, shuffle=True),
                              DataLoader([dset[i] for i in range(256)], bs=256))
            learn = Learner(dls, net, opt_func=SGD, loss_func=F.cross_entropy)
            with learn.no_bar(), learn.no_logging():
                t0 = time.perf_counter()
                learn.fit(1, lr=0.1)
                times.append(time.perf_counter() - t0)
        out[kind][name] = sorted(times[1:])[len(times[1:]) // 2]
print(json.dumps(out))
"""


def run_fastai(python: str, x8, y, repeats: int) -> tuple[dict, str]:
    """fastai's Learner, one epoch, in its own venv (never descent's): ({kind: {name:
    seconds}}, a note). The validation set is one batch of 256 (fastai requires one)."""
    import json
    import subprocess
    import tempfile

    import numpy as np

    if not Path(python).exists():
        return {}, (f"skipped: no fastai venv at {python} (make one: python -m venv it, install "
                    "the CPU torch wheel, then fastai; or pass --fastai-python)")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.npz"
        np.savez(data, x=x8.numpy(), y=y.numpy())
        proc = subprocess.run([python, "-c", FASTAI_CHILD, str(data), str(repeats)],
                              capture_output=True, text=True, timeout=1800)  # fmt: skip
    if proc.returncode != 0:
        return {}, "skipped: the fastai run failed: " + proc.stderr.strip().splitlines()[-1]
    version = subprocess.run([python, "-c", "import fastai, torch; print(fastai.__version__, "
                              "torch.__version__)"], capture_output=True, text=True)  # fmt: skip
    fa, tv = version.stdout.split()
    note = (
        f"fastai {fa} on torch {tv} in {python} (a separate venv), torch's default threads, "
        "fit(1) incl. its one validation batch; progress bar and logging off"
    )
    return json.loads(proc.stdout.strip().splitlines()[-1]), note


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="3 repeats, 1 for fastai")
    ap.add_argument("--profile", action="store_true", help="also cProfile descent's epochs")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's default)")
    ap.add_argument(
        "--fastai-python", default=FASTAI_PYTHON, help="python of a separate venv with fastai"
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.repeats = 3
    if args.threads:
        torch.set_num_threads(args.threads)
    slow_repeats = 1 if args.quick else 3
    x8, y = mnist_60k()  # (60000, 28, 28) uint8, (60000,)
    n = len(x8)
    xf = x8.reshape(n, -1).float() / 255  # (60000, 784) float32, for the other loops
    lines = header("Throughput: one epoch of 60,000 images, batch 256, samples/s")
    lines += [
        f"data: bundled MNIST sample tiled to {n:,} with random shifts <= 2 px; "
        f"{args.repeats} interleaved rounds (median; {slow_repeats} for fastai), "
        f"{torch.get_num_threads()} torch threads. 'descent speed-up' = that loop's time / "
        "descent's, round by round.",
        "",
    ]
    fast, note = run_fastai(args.fastai_python, x8, y, slow_repeats)
    lin, lin_layouts = compare("linear", x8, y, xf, args.repeats, x64=xf.double().numpy())
    mlp, mlp_layouts = compare("mlp", x8, y, xf, args.repeats)
    lines += report("Linear 784 -> 10", lin, fast.get("linear", {}), n)
    lines += report("MLP 784 -> 100 -> 10", mlp, fast.get("mlp", {}), n)
    if note:
        lines += [f"fastai: {note}", ""]
    lines += [
        "### The floor's matrix products by memory layout (µs per batch of 256)",
        "",
        table(["product", "layout", "µs/batch", ""], lin_layouts + mlp_layouts),
        "",
    ]
    hand = "hand-written gradient loop (no Learner)"
    lines += [
        target("linear: descent / compute floor", lin, FLOOR, OURS, 0.75),
        target("linear: descent / SGDClassifier", lin, SKLEARN, OURS, 15),
        target("linear: descent / DataLoader loop", lin, DATALOADER, OURS, 3.5),
        target("MLP: descent / compute floor", mlp, FLOOR, OURS, 0.6),
        target("MLP: descent / DataLoader loop", mlp, DATALOADER, OURS, 3),
        "(info) compute floor / loop, median (rounds): "
        + ", ".join(
            f"{kind} {name} {med:.2f} ({lo:.2f}-{hi:.2f})"
            for kind, samples in (("linear", lin), ("MLP", mlp))
            for name in (AUTOGRAD, hand)
            if name in samples
            for med, lo, hi in [ratio(samples, FLOOR, name)]
        ),
    ]
    if args.profile:
        steps = -(-n // BS)
        for kind in ("linear", "mlp"):
            for fused in (None, False):
                which = "fused" if fused is None else "autograd"
                lines += ["", f"### cProfile of descent's {kind} epoch ({which}), per step", ""]
                epoch = lambda k=kind, f=fused: descent_epoch(x8, y, k, fused=f)  # noqa: E731
                lines.append(profile_per_step(epoch, steps, 25))
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
