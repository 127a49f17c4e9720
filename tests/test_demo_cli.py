"""The demo as a subprocess, and the CLI's basics."""

import importlib
import json
import subprocess
import sys

import numpy as np
import pytest

from descent import __version__
from descent.cli import main
from descent.data.synthetic import roller_coaster


def run_cli(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "descent", *args], capture_output=True, text=True, timeout=timeout
    )


def test_demo_subprocess_converges_to_the_least_squares_optimum(tmp_path):
    out = tmp_path / "demo"
    proc = run_cli("demo", "--out", str(out), "--seed", "7")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    # the book's ten steps are printed, one row each, then the comparison with the plain loop
    assert "lr 1e-05" in text and "same losses" in text
    for step in range(1, 11):
        assert f"\n{step:>12}  " in text
    assert "standardise the input" in text and "Summary" in text
    summary = json.loads((out / "summary.json").read_text())
    t, speed = roller_coaster(7)
    t, speed = t.double().numpy(), speed.double().numpy()
    coef = np.polyfit(t, speed, 2)
    optimum = np.mean((np.polyval(coef, t) - speed) ** 2)
    assert summary["optimum_loss"] == pytest.approx(optimum, rel=1e-9)
    assert summary["final_loss"] <= optimum * 1.01
    assert summary["fit"]["stopped"] == "converged"
    np.testing.assert_allclose(list(summary["params"].values()), coef, rtol=1e-3)
    for name in ("fit.png", "book_steps.png", "fit_steps.png", "loss.png", "book_loss.png"):
        png = out / "plots" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "metrics.csv").read_text().startswith("epoch,train_loss,time\n")
    config = json.loads((out / "config.json").read_text())
    assert config["command"] == "demo" and config["seed"] == 7
    assert not list(out.rglob("*.tmp"))  # nothing half-written


def test_demo_quiet_prints_only_the_summary(tmp_path):
    proc = run_cli("demo", "--out", str(tmp_path / "q"), "--quiet")
    assert proc.returncode == 0
    assert "train_loss" not in proc.stdout and "Summary" in proc.stdout


def test_version_help_and_bad_usage(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and __version__ in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0 and "demo" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["demo", "--seed", "seven"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "invalid int value: 'seven'" in err and "--help" in err
    with pytest.raises(SystemExit) as e:
        main(["dmeo"])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_help_and_usage_errors_do_not_import_torch():
    # `descent --help` and a mistyped option answer at once: torch loads ~2 s, and
    # torch.optim's first optimizer another ~2 s (it imports torch._dynamo)
    code = (
        "import sys\n"
        "from descent.cli import main\n"
        "for args in (['--help'], ['train', '--batch-size', 'x'], ['fit', '--help']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "import descent\n"
        "assert 'torch' not in sys.modules\n"
        "assert [getattr(descent, n) for n in descent.__all__]  # every public name loads\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_the_program_keeps_the_collector_off_what_lives_until_exit(tmp_path):
    # console_main (the `descent` program) freezes what is alive once torch is imported
    # (after the options are parsed) and at the end; main (tests, notebooks) does not
    csv = tmp_path / "d.csv"
    csv.write_text("t,y\n" + "".join(f"{t},{t * t + t % 3}\n" for t in range(20)))
    args = ["fit", str(csv), "--model", "a*t**2 + c", "--y", "y", "--no-plots", "-q", "--out"]
    help_code = (
        "import gc, sys\n"
        "from descent.cli import console_main\n"
        "sys.argv = ['descent', 'fit', '--help']\n"
        "try:\n"
        "    console_main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "assert 'torch' not in sys.modules and gc.get_freeze_count() == 0\n"
    )
    fit_code = (
        "import gc, sys\n"
        "from descent.cli import console_main, main\n"
        f"assert main({args + [str(tmp_path / 'a')]!r}) == 0\n"
        "assert gc.get_freeze_count() == 0\n"
        f"sys.argv = ['descent', *{args + [str(tmp_path / 'b')]!r}]\n"
        "assert console_main() == 0\n"
        "assert gc.get_freeze_count() > 100_000, gc.get_freeze_count()\n"
    )
    for code in (help_code, fit_code):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "b" / "params.json").is_file()


def test_before_run_is_called_once_the_options_are_parsed(tmp_path, capsys):
    calls = []
    with pytest.raises(SystemExit):
        main(["fit", "--help"], before_run=lambda args: calls.append("help"))
    assert main(["explain"], before_run=lambda args: calls.append(args.command)) == 0
    assert calls == ["explain"]
    # console_main imports commands/NAME.py for cli/NAME.py: every one must exist
    from descent.cli import COMMANDS

    for cli_module in COMMANDS:
        importlib.import_module(cli_module.__name__.replace("descent.cli.", "descent.commands."))


def test_explain_prints_the_seven_steps(capsys):
    assert main(["explain"]) == 0
    out = capsys.readouterr().out
    for tag in (
        "[1 init]",
        "[2 predict]",
        "[3 loss]",
        "[4 gradient]",
        "[5 step]",
        "[6 repeat]",
        "[7 stop]",
    ):
        assert tag in out
    assert "after_epoch: DivergenceGuard, EarlyStopping" in out


def test_unwritable_out_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["demo", "--out", str(blocker), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "not a directory" in err and "Traceback" not in err
