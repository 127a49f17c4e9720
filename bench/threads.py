"""Threads on a busy machine: what made small runs collapse, and descent's default.

The machine is made busy as a user's machine is: `--busy` (default 2) background
processes each spinning on a core; then the same on the quiet machine (for
information: the default must not cost a quiet machine its speed). Each setting runs
in its own process (OpenMP reads its environment once, when torch loads it), settings
interleaved over `--repeats` rounds; medians, with ranges, are reported. Settings:

  default          what `descent` does (distributed/threads.py): GOMP_SPINCOUNT=10000,
                   threads = the usable cores (os.sched_getaffinity) less the ones
                   other programs are running on now (/proc/loadavg's instant count)
  N, spinning      OMP_WAIT_POLICY=ACTIVE: OpenMP threads spin-wait between regions
  N, passive       OMP_WAIT_POLICY=PASSIVE: they sleep at once

Workloads: one epoch of the linear classifier on 60,000 images (descent's Learner, and
the DataLoader loop of bench/throughput.py in the same process and settings), and a
3-epoch MLP run of `descent train` on the bundled sample (the fit, timed inside).
Prints PASS/FAIL for the issue's targets under the busy processes: linear >= 3.5x the
DataLoader loop per epoch with the default, and the default's MLP within 1.5x of its
best setting.

    python bench/threads.py [--repeats 3] [--busy 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path.insert(0, str(SRC))
from descent.distributed.threads import prepare_openmp  # noqa: E402  (torch-free)


def child(kind: str, threads: int | None) -> dict:
    """Runs inside a fresh process: the workload's seconds."""
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(SRC))
    from descent.distributed.threads import set_threads

    used = set_threads(threads)
    if kind == "linear":
        from throughput import dataloader_epoch, descent_epoch, mnist_60k

        x8, y = mnist_60k()
        xf = x8.reshape(len(x8), -1).float() / 255
        descent_epoch(x8, y, "linear")  # warm-up
        return {
            "threads": used,
            "descent": descent_epoch(x8, y, "linear"),
            "dataloader": dataloader_epoch(xf, y, "linear"),
        }
    from descent.commands.config import TrainConfig
    from descent.commands.train import make_learner, prepare_data

    cfg = TrainConfig(model="mlp", epochs=3, patience=0, deskew=False, quiet=True, device="cpu")
    learner = make_learner(cfg, prepare_data(cfg), cfg.lr)
    t0 = time.perf_counter()
    learner.fit(3)
    return {"threads": used, "mlp": time.perf_counter() - t0}


def settings(cores: int) -> dict[str, tuple[dict, int | None]]:
    """name -> (environment changes, --threads). "N, passive" with N = the default's
    count is the default itself and is not run twice: two samples of one setting would
    only measure the machine's noise."""
    env: dict[str, str] = {}
    prepare_openmp(env)  # what the descent program sets before torch loads
    found = {"default": (env, None)}
    for n in sorted({1, cores}):
        found[f"{n}, spinning"] = ({"OMP_WAIT_POLICY": "ACTIVE"}, n)
        found[f"{n}, passive"] = ({"OMP_WAIT_POLICY": "PASSIVE"}, n)
    return found


def measure(kind: str, env_changes: dict, threads: int | None) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}  # fmt: skip
    env.update(env_changes)
    args = [sys.executable, __file__, "--child", kind]
    if threads is not None:
        args += ["--threads", str(threads)]
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def spinner() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def condition(cases: dict, cores: int, n_busy: int, repeats: int, verdicts: bool) -> list[str]:
    """The table (and, with `verdicts`, the PASS/FAIL lines) under n_busy spinners."""
    busy = [spinner() for _ in range(n_busy)]
    samples: dict[tuple[str, str], list[dict]] = {}
    try:
        names = list(cases)
        for r in range(repeats):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                for kind in ("linear", "mlp"):
                    samples.setdefault((name, kind), []).append(measure(kind, *cases[name]))
    finally:
        for p in busy:
            p.kill()
            p.wait()
    what = f"under {n_busy} busy processes" if n_busy else "on the quiet machine"
    lines = [f"threads {what}, {cores} usable cores, "
             f"{repeats} interleaved rounds (medians, [range])", "",
             f"{'setting':<16}{'threads':>8}{'linear epoch':>18}{'DataLoader epoch':>20}"
             f"{'ratio':>8}{'MLP 3 epochs':>18}"]  # fmt: skip

    def med(values):
        return statistics.median(values), min(values), max(values)

    mlp_medians, ratios = {}, {}
    for name in cases:
        lin, mlp = samples[(name, "linear")], samples[(name, "mlp")]
        d, dl = med([s["descent"] for s in lin]), med([s["dataloader"] for s in lin])
        ratio = statistics.median(s["dataloader"] / s["descent"] for s in lin)
        m = med([s["mlp"] for s in mlp])
        mlp_medians[name], ratios[name] = m[0], ratio
        lines.append(
            f"{name:<16}{lin[0]['threads']:>8}{d[0]:>9.3f} s [{d[1]:.2f}-{d[2]:.2f}]"
            f"{dl[0]:>10.3f} s [{dl[1]:.2f}-{dl[2]:.2f}]{ratio:>7.1f}x"
            f"{m[0]:>9.3f} s [{m[1]:.2f}-{m[2]:.2f}]"
        )
    best = min(mlp_medians, key=mlp_medians.get)
    within = mlp_medians["default"] / mlp_medians[best]
    fastest = min(
        ratios, key=lambda n: statistics.median(s["descent"] for s in samples[(n, "linear")])
    )
    lin_best = statistics.median(s["descent"] for s in samples[(fastest, "linear")])
    lin_default = statistics.median(s["descent"] for s in samples[("default", "linear")])
    if not verdicts:
        return lines + [
            "",
            f"(info) default linear epoch {lin_default / lin_best:.2f}x its best setting's "
            f"time ({fastest}); default MLP {within:.2f}x its best's ({best})",
        ]
    return lines + [
        "",
        f"{'PASS' if ratios['default'] >= 3.5 else 'FAIL'}: default linear epoch is "
        f"{ratios['default']:.1f}x the DataLoader loop's speed (target >= 3.5x)",
        f"{'PASS' if within <= 1.5 else 'FAIL'}: default 3-epoch MLP is {within:.2f}x its best "
        f"setting ({best}, {mlp_medians[best]:.3f} s) (target <= 1.5x)",
    ]


def main(argv=None) -> str:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="one round")
    ap.add_argument("--busy", type=int, default=2, help="background processes spinning")
    ap.add_argument("--child")
    ap.add_argument("--threads", type=int)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.threads)))
        return ""
    if args.quick:
        args.repeats = 1
    cores = len(os.sched_getaffinity(0))
    cases = settings(cores)
    lines: list[str] = []
    for busy_count in dict.fromkeys([args.busy, 0]):
        lines += condition(cases, cores, busy_count, args.repeats, verdicts=busy_count > 0)
        lines.append("")
    text = "\n".join(lines).rstrip()
    print(text)
    return text


if __name__ == "__main__":
    main()
