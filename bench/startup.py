"""Fixed costs of small jobs: whole `descent` processes against `python -c "import torch"`,
interleaved in one run (issue 18).

Jobs, each a fresh process writing a fresh run folder:

- import torch: `python -c "import torch"`, the floor every job stands on
- fit: `descent fit` of the book's roller coaster (20 rows, a*time**2 + b*time + c,
  Levenberg-Marquardt), with its three plots
- fit --no-plots: the same without plots
- train: `descent train mnist-sample --classes 3,7 --epochs 1` (Adam, five plots)

Acceptance (issue 18), ratios of medians over interleaved rounds: fit <= 1.6x,
fit --no-plots <= 1.25x, train <= 2x `import torch`.

Then where the time goes: `python -X importtime` of each job, by what was imported
(a module imported by torch._dynamo, sympy or matplotlib counts as theirs), and the
phases of the jobs timed inside one process.

    python bench/startup.py [--repeats 7] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import header, interleaved_samples, table, verdict  # noqa: E402

FORMULA = "a*time**2 + b*time + c"
TARGETS = {"fit": 1.6, "fit --no-plots": 1.25, "train": 2.0}
FLOOR = "import torch"
# The floor exiting as `descent` does (cli.console_main): for information, no verdict.
FROZEN = "import torch, exit as descent does"


def descent_command() -> list[str]:
    """How a user runs descent: the console script beside this Python, else -m."""
    script = Path(sys.executable).with_name("descent")
    return [sys.executable, str(script)] if script.exists() else [sys.executable, "-m", "descent"]


def write_roller_coaster(path: Path) -> Path:
    """The book's 20 speeds (descent.data.synthetic.roller_coaster, seed 42) as a CSV."""
    from descent.data.synthetic import roller_coaster

    t, speed = roller_coaster(42)
    rows = [f"{int(a)},{float(b):.6g}" for a, b in zip(t, speed, strict=True)]
    path.write_text("time,speed\n" + "\n".join(rows) + "\n")
    return path


def job_args(csv: Path) -> dict[str, list[str]]:
    """Each job's arguments after the program (the run folder is added per run)."""
    fit = ["fit", str(csv), "--model", FORMULA, "--y", "speed"]
    return {
        FLOOR: ["-c", "import torch"],
        FROZEN: ["-c", "import gc, torch; gc.freeze()"],
        "fit": fit,
        "fit --no-plots": [*fit, "--no-plots"],
        "train": ["train", "mnist-sample", "--classes", "3,7", "--epochs", "1"],
    }


class Runner:
    """Runs the jobs as fresh processes, each `descent` run in a new run folder."""

    def __init__(self, csv: Path, work: Path, prefix: list[str] | None = None) -> None:
        self.args, self.work, self.prefix = job_args(csv), work, prefix or []
        # runners share `work`: numbering goes on from the folders already there (a
        # descent run refuses an --out that holds another run)
        self.count = len(list(work.glob("run*")))

    def command(self, name: str) -> list[str]:
        if name in (FLOOR, FROZEN):
            return [sys.executable, *self.prefix, *self.args[name]]
        self.count += 1
        python, *program = descent_command()
        out = ["--out", str(self.work / f"run{self.count}")]
        return [python, *self.prefix, *program, *self.args[name], *out]

    def run(self, name: str) -> tuple[float, float, str]:
        """Wall and CPU (user + system, from wait4) seconds of one run, and its stderr."""
        cmd = self.command(name)
        with tempfile.TemporaryFile(dir=self.work) as err:
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=self.work)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
            err.seek(0)
            stderr = err.read().decode(errors="replace")
        if proc.returncode != 0:
            raise SystemExit(f"{name} failed ({proc.returncode}): {' '.join(cmd)}\n{stderr}")
        return wall, usage.ru_utime + usage.ru_stime, stderr


# --- where the time goes: -X importtime, grouped ---------------------------------------

# A module imported (directly or not) by one of these counts as theirs.
OWNERS = [
    ("torch._dynamo", "torch._dynamo (torch.optim)"),
    ("torch.fx.experimental.symbolic_shapes", "sympy (symbolic shapes)"),
    ("sympy", "sympy (symbolic shapes)"),
    ("matplotlib", "matplotlib"),
]
# Otherwise the nearest of these packages among the module and its importers.
PACKAGES = ["torch", "descent", "rich", "safetensors", "PIL", "numpy", "pyarrow", "pandas"]


def import_groups(importtime: str) -> dict[str, float]:
    """Seconds of import by group, from `python -X importtime`'s stderr (its lines are in
    post-order: a module's imports come before it, one indent deeper)."""
    pending: dict[int, list[dict]] = {}
    for line in importtime.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, _, name = line[len("import time:") :].split("|", 2)
        depth = (len(name) - len(name.lstrip()) - 1) // 2
        node = {"name": name.strip(), "self": int(own) / 1e6, "kids": pending.pop(depth + 1, [])}
        pending.setdefault(depth, []).append(node)
    groups: dict[str, float] = {}

    def walk(node: dict, owner: str | None, package: str | None) -> None:
        name = node["name"]
        for prefix, label in OWNERS:
            if owner is None and (name == prefix or name.startswith(prefix + ".")):
                owner = label
        top = name.split(".")[0]
        package = top if top in PACKAGES else package
        key = owner or package or "other (Python, stdlib)"
        groups[key] = groups.get(key, 0.0) + node["self"]
        for kid in node["kids"]:
            walk(kid, owner, package)

    for root in pending.get(0, []):
        walk(root, None, None)
    return groups


# --- where the time goes: phases inside one process ------------------------------------

PHASES = textwrap.dedent(
    """
    import gc, io, json, sys, time
    from pathlib import Path
    T = time.perf_counter
    csv, work = sys.argv[1], Path(sys.argv[2])
    out, collecting = {}, {"s": 0.0}
    def lap(name, t0):
        out[name] = T() - t0
    def count_gc(phase, info):  # time spent in garbage collection
        collecting["s"] += T() if phase == "stop" else -T()
    t0 = T(); import torch; lap("import torch", t0)
    t0 = T()
    import descent.cli, descent.commands.fit, descent.commands.train
    lap("import descent (cli, fit and train commands: rich, pyarrow, ...)", t0)
    gc.freeze()  # as cli.console_main does once the command's module is imported
    gc.callbacks.append(count_gc)
    from rich.console import Console
    from descent.commands.config import FitConfig, TrainConfig
    from descent.commands.fit import fit_command
    from descent.commands.train import train_command
    quiet = lambda: Console(file=io.StringIO())
    cfg = dict(data=csv, model=sys.argv[3], y="speed", plots=False)
    t0 = T(); fit_command(FitConfig(**cfg, out=str(work / "f1")), quiet())
    lap("fit --no-plots, first in the process (read, LM fit, run folder)", t0)
    t0 = T(); fit_command(FitConfig(**cfg, out=str(work / "f2")), quiet())
    lap("fit --no-plots, again", t0)
    t0 = T()
    import matplotlib.figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    lap("import matplotlib (Figure, Agg canvas)", t0)
    t0 = T(); fit_command(FitConfig(**{**cfg, "plots": True}, out=str(work / "f3")), quiet())
    lap("fit with its three plots (first figures in the process)", t0)
    t0 = T(); fit_command(FitConfig(**{**cfg, "plots": True}, out=str(work / "f4")), quiet())
    lap("fit with its three plots, again", t0)
    p = torch.zeros(785, requires_grad=True)
    from torch.optim.adam import adam
    state = [torch.zeros_like(p), torch.zeros_like(p), torch.tensor(0.0)]
    t0 = T()
    adam([p.detach()], [torch.ones_like(p)], state[:1], state[1:2], [], state[2:], lr=1e-3,
         beta1=0.9, beta2=0.999, weight_decay=0.0, eps=1e-8, amsgrad=False, maximize=False)
    lap("first step of torch.optim.adam.adam, the functional API (no torch._dynamo)", t0)
    assert "torch._dynamo" not in sys.modules
    t0 = T(); opt = torch.optim.Adam([p], lr=1e-3)
    lap("first torch.optim.Adam(...): imports torch._dynamo", t0)
    p.grad = torch.ones_like(p)
    t0 = T(); opt.step(); lap("its first step", t0)
    t0 = T()
    train_command(TrainConfig(classes=["3", "7"], epochs=1, out=str(work / "t1")), quiet())
    lap("train 3 vs 7, 1 epoch, after all the above (data, epoch, 5 plots)", t0)
    out["garbage collection, within the phases above"] = collecting["s"]
    print(json.dumps(out))
    """
)


def phases(csv: Path, work: Path) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-c", PHASES, str(csv), str(work), FORMULA],
        capture_output=True,
        text=True,
        cwd=work,
    )
    if proc.returncode != 0:
        raise SystemExit(f"phases failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def spread(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}"


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7, help="interleaved rounds (default 7)")
    ap.add_argument("--quick", action="store_true", help="3 rounds")
    args = ap.parse_args(argv)
    repeats = 3 if args.quick else args.repeats
    lines = header("Fixed costs of small jobs: whole processes against `import torch`")
    with tempfile.TemporaryDirectory(prefix="descent-startup-") as tmp:
        work = Path(tmp)
        csv = write_roller_coaster(work / "speed.csv")
        lines += whole_processes(csv, work, repeats)
        lines += ["### Imports by group (`python -X importtime`, one run each, seconds)", ""]
        lines += [import_table(csv, work), ""]
        lines += ["### Phases inside one process (seconds, one run)", ""]
        lines.append(table(["phase", "s"], [[k, v] for k, v in phases(csv, work).items()]))
    text = "\n".join(lines)
    print(text)
    return text


def whole_processes(csv: Path, work: Path, repeats: int) -> list[str]:
    """The table of whole-process times and the acceptance lines."""
    runner = Runner(csv, work)
    names = list(job_args(csv))
    variants = {name: (lambda name=name: runner.run(name)[:2]) for name in names}
    samples = interleaved_samples(variants, repeats, warmup=1)
    wall = {n: [w for w, _ in samples[n]] for n in names}
    cpu = {n: [c for _, c in samples[n]] for n in names}
    median = {n: statistics.median(wall[n]) for n in names}
    rows = []
    for n in names:
        per_round = [w / f for w, f in zip(wall[n], wall[FLOOR], strict=True)]
        ratio, same_exit = median[n] / median[FLOOR], median[n] / median[FROZEN]
        rows.append([n, median[n], spread(wall[n]), statistics.median(cpu[n]), ratio,
                     spread(per_round), same_exit])  # fmt: skip
    return [
        f"median of {repeats} interleaved rounds (after one warm-up round); each job a fresh "
        f"process; the fit is {FORMULA} on the book's 20 speeds; descent runs as its console "
        "script. `ratio` is to `import torch` (the acceptance lines); the last column is to "
        "`import torch` exiting as descent does (gc.freeze() first, cli.console_main), for "
        "information.",
        "",
        table(
            ["job", "wall s", "min-max", "CPU s", "ratio", "ratio per round", "ratio, same exit"],
            rows,
        ),  # fmt: skip
        "",
        *[
            verdict(
                f"{job}: {job_title(job)} / `import torch`",
                median[job] / median[FLOOR],
                target,
                higher_is_better=False,
            )  # fmt: skip
            for job, target in TARGETS.items()
        ],
        "",
    ]


def import_table(csv: Path, work: Path) -> str:
    runner = Runner(csv, work, prefix=["-X", "importtime"])
    names = [n for n in job_args(csv) if n != FROZEN]
    groups = {n: import_groups(runner.run(n)[2]) for n in names}
    keys = sorted({k for g in groups.values() for k in g}, key=lambda k: -groups["train"].get(k, 0))
    rows = [[k, *(groups[n].get(k, 0.0) for n in names)] for k in keys]
    rows.append(["all imports", *(sum(groups[n].values()) for n in names)])
    return table(["imported by", *names], rows)


def job_title(job: str) -> str:
    return {
        "fit": "20-row fit with plots",
        "fit --no-plots": "20-row fit --no-plots",
        "train": "train 3 vs 7, 1 epoch",
    }[job]


if __name__ == "__main__":
    main()
