"""`make bench`: every benchmark in bench/, one after another, each in its own process;
their tables go to the terminal and to bench/RESULTS.md, with the acceptance lines
(PASS / FAIL) gathered at the top.

    python bench/run_all.py [--quick] [--only loop_overhead,throughput]

Every ratio in RESULTS.md was measured within one script's run: figures from
different runs are never compared.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import machine_info  # noqa: E402

SCRIPTS = [
    "loop_overhead",
    "startup",
    "throughput",
    "nist_fit",
    "memory",
    "lr_sweep",
    "digits_vs_sklearn",
    "watch_overhead",
    "tables",
    "many_curves",
    "defaults_vs_logreg",
    "threads",
]
# Figures of scripts run by hand (bench/ddp_stress.py, bench/gpu.py on a GPU machine) sit
# below this line in RESULTS.md, and a new `make bench` keeps them.
BY_HAND = "<!-- run by hand: kept by make bench -->"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="pass --quick to every script")
    ap.add_argument("--only", help="comma-separated script names")
    ap.add_argument("--fastai-python", help="passed to throughput.py: a venv's python with fastai")
    args = ap.parse_args(argv)
    names = args.only.split(",") if args.only else SCRIPTS
    sections, verdicts, failed = [], [], []
    t0 = time.perf_counter()
    for name in names:
        script = HERE / f"{name}.py"
        if not script.exists():
            failed.append(f"{name}: no such script")
            continue
        cmd = [sys.executable, str(script)] + (["--quick"] if args.quick else [])
        if name == "throughput" and args.fastai_python:
            cmd += ["--fastai-python", args.fastai_python]
        print(f"\n=== {name} ===", flush=True)
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        out = proc.stdout.strip()
        print(out, flush=True)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            failed.append(f"{name}: exit {proc.returncode}")
        took = time.perf_counter() - started
        sections.append(f"{out}\n\n_({name}.py, {took:.0f} s)_\n")
        verdicts += [ln for ln in out.splitlines() if ln.startswith(("PASS", "FAIL"))]
    lines = [
        "# descent benchmark results",
        "",
        "Written by `make bench` (bench/run_all.py"
        + (" --quick" if args.quick else "")
        + f"), {time.strftime('%Y-%m-%d %H:%M')}, {time.perf_counter() - t0:.0f} s in all.",
        machine_info(),
        "",
        "## Acceptance lines",
        "",
        *[f"- {v}" for v in verdicts],
        *[f"- ERROR {f}" for f in failed],
        "",
        *sections,
    ]
    if not args.only:
        old = (HERE / "RESULTS.md").read_text() if (HERE / "RESULTS.md").exists() else ""
        kept = old[old.index(BY_HAND) :] if BY_HAND in old else ""
        (HERE / "RESULTS.md").write_text("\n".join(lines) + "\n" + kept)
        print(f"\nwrote {HERE / 'RESULTS.md'}")
    print("\n".join(verdicts + [f"ERROR {f}" for f in failed]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
