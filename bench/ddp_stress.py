"""The 2-rank gloo run of tests/test_distributed.py, many times: does every run exit
cleanly? (Not in CI.) A run that passes its deadline is a hang (its processes are
killed); a non-zero exit or a signal is an abort; otherwise the parameters are compared
with the one-process run's (atol 1e-6).

    python bench/ddp_stress.py [--runs 50] [--deadline 120]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
OPTS = ["train", "mnist-sample", "--classes", "3,7", "--no-deskew", "--quiet", "--device",
        "cpu", "--optimizer", "sgd", "--lr", "0.5", "--batch-size", "63", "--epochs", "3",
        "--patience", "0", "--autograd"]  # fmt: skip


def run(args: list[str], cwd: str, deadline: float) -> tuple[str, float, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    p = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    try:
        _, err = p.communicate(timeout=deadline)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        return "hang", time.perf_counter() - t0, ""
    status = "ok" if p.returncode == 0 else f"exit {p.returncode}"
    return status, time.perf_counter() - t0, err[-2000:]


def main(argv=None) -> str:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--deadline", type=float, default=120)
    args = ap.parse_args(argv)
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        status, _, err = run([py, "-m", "descent", *OPTS, "--out", "one"], tmp, args.deadline)
        assert status == "ok", err
        ref = load_file(Path(tmp) / "one" / "model.safetensors")
        counts: dict[str, int] = {}
        times, worst = [], 0.0
        for i in range(args.runs):
            out = f"two{i}"
            cmd = [py, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                   "-m", "descent", *OPTS, "--out", out]  # fmt: skip
            status, seconds, err = run(cmd, tmp, args.deadline)
            if status == "ok":
                got = load_file(Path(tmp) / out / "model.safetensors")
                same = all(torch.allclose(got[k], ref[k], rtol=0, atol=1e-6) for k in ref)
                status = "ok" if same else "different parameters"
            if status != "ok":
                print(f"run {i}: {status}\n{err}", file=sys.stderr)
            counts[status] = counts.get(status, 0) + 1
            times.append(seconds)
            worst = max(worst, seconds)
    times.sort()
    text = (
        f"ddp_stress: {args.runs} runs of 2 ranks (gloo, torchrun --standalone): "
        + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        + f"; wall per run median {times[len(times) // 2]:.1f} s, max {worst:.1f} s"
    )
    print(text)
    return text


if __name__ == "__main__":
    main()
