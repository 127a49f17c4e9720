"""The finishing phase: model, metrics and summary are written before the plots, and a
SIGINT or SIGTERM while the plots are drawn still leaves a complete run, a message, and
the signal's exit status. Real processes, real signals; plotting is made slow by the
helper script (a monkeypatch), not by the product."""

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from descent.io.models import load_model

NIST = Path(__file__).resolve().parents[1] / "bench" / "nist"
SLOW_PLOTS = textwrap.dedent(
    """
    import sys, time
    import descent.commands.fit_output as fit
    import descent.commands.train as train
    from descent.cli import main

    def slow(real):
        def save_figure(fig, path, *args, **kwargs):
            print("PLOTTING", path.name, flush=True)
            time.sleep(60)  # the signal arrives here
            return real(fig, path, *args, **kwargs)
        return save_figure

    train.save_figure = slow(train.save_figure)
    fit.save_figure = slow(fit.save_figure)
    sys.exit(main(sys.argv[1:]))
    """
)


@pytest.mark.parametrize(
    "sig, status, argv",
    [
        (signal.SIGINT, 130, ["train", "mnist-sample", "--classes", "3,7", "--epochs", "2"]),
        (signal.SIGTERM, 143, ["fit", str(NIST / "Misra1a.csv"), "--model", "b1*(1-exp(-b2*x))",
                               "--y", "y", "--init", "b1=500,b2=1e-4"]),
    ],
)  # fmt: skip
def test_a_signal_while_plotting_leaves_a_complete_run(tmp_path, sig, status, argv):
    script = tmp_path / "slow_plots.py"
    script.write_text(SLOW_PLOTS)
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, str(script), *argv, "--out", str(out), "--json", str(tmp_path / "s.json")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not proc.stdout.readline().startswith("PLOTTING"):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == status, stderr
    assert "Traceback" not in stderr
    assert f"interrupted by {sig.name} while writing the run's files: the run is complete" in (
        stdout
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped"] in ("max_epochs", "converged") and not summary.get("plots")
    assert json.loads((tmp_path / "s.json").read_text()) == summary
    model, _ = load_model(out)  # model.json + model.safetensors are whole
    assert sum(p.numel() for p in model.parameters()) > 0
    assert not list(out.rglob("*.tmp"))  # the cut plot left no half-written file
