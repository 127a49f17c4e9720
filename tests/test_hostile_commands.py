"""Issue 13's guarantees for the commands and options added since: `descent grad`, fit's
--sigma/--bounds/--fix/--ci profile/--by, predict on fit runs, train --model mean,
resume --epochs/--steps, report, watch and --tensorboard. Each input a hostile or
careless user gave (tracebacks, hangs or files written where they should not be, before
the fix) now ends with exit status 2 and one message naming the option, file or row,
and changes nothing it should not."""

import os
from pathlib import Path

import pytest
import torch
from tests.test_hostile import refused

from descent.cli import main
from descent.errors import OutputError
from descent.fitting.many import fit_many
from descent.io.files import atomic_write_text, check_writable
from descent.models.formula import parse_formula

PROC = Path("/proc/self")  # a folder no file can be made in, even by root
needs_proc = pytest.mark.skipif(not PROC.is_dir(), reason="needs Linux's /proc")


def listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def table(tmp_path) -> Path:
    """x, y (quadratic), s (sigma), g (two groups), name (one row each)."""
    rows = [f"{i / 4},{2 * (i / 4) ** 2 + 3 * i / 4 + 1 + (-1) ** i * 0.1},{0.5},{'AB'[i % 2]},r{i}"
            for i in range(24)]  # fmt: skip
    path = tmp_path / "data.csv"
    path.write_text("x,y,s,g,name\n" + "\n".join(rows) + "\n")
    return path


def fit_args(table: Path, *extra: str) -> list[str]:
    return ["fit", str(table), "--model", "a*x**2+b*x+c", "--y", "y", "--no-plots", "-q", *extra]


@pytest.fixture(scope="module")
def fit_run(tmp_path_factory) -> tuple[Path, Path]:
    """(a finished fit run, its data)."""
    folder = tmp_path_factory.mktemp("fitrun")
    data = folder / "data.csv"
    data.write_text("x,y\n" + "".join(f"{i},{i * i + 1 + 0.1 * (-1) ** i}\n" for i in range(10)))
    run = folder / "run"
    assert main(fit_args(data, "--out", str(run))) == 0
    return run, data


# -- descent grad ------------------------------------------------------------------------------


def test_grad_target_that_is_also_an_input_is_refused(table, capsys):
    text = refused(capsys, "grad", "a*x", "--at", "a=1", "--data", str(table), "--y", "x")
    assert "the target 'x' (--y) is also an input of the formula" in text


def test_grad_list_for_a_formula_parameter_with_data_is_refused(table, capsys):
    text = refused(capsys, "grad", "a*x", "--at", "a=1,2", "--data", str(table), "--y", "y")
    assert "with data each variable of a formula is one number" in text and "a=VALUE" in text


def test_grad_list_longer_than_the_check_can_afford_is_refused(capsys):
    text = refused(capsys, "grad", "x**2", "--at", "x=" + ",".join(["1"] * 1001), "--sum")
    assert "x: 1,001 values; at most 1,000" in text
    assert main(["grad", "x**2", "--at", "x=" + ",".join(["2"] * 1000), "--sum", "-q"]) == 0


def test_grad_non_finite_value_in_a_list_names_its_position(capsys):
    text = refused(capsys, "grad", "x**2", "--at", "x=1,2,-inf", "--sum")
    assert "x = -inf (value 3 of 3): values must be finite" in text


@needs_proc
def test_grad_outputs_that_cannot_be_written_are_refused_before_the_work(tmp_path, capsys):
    cases = [
        (["--plot", str(tmp_path / "g.xyz")], "--plot", "name the file .png, .svg or .pdf"),
        (["--plot", "/proc/self/g.png"], "--plot", "not writable"),
        (["--plot", str(tmp_path)], "--plot", "is a folder"),
        (["--json", "/proc/self/g.json"], "--json", "not writable"),
        (["--json", str(tmp_path)], "--json", "is a folder"),
    ]
    for extra, option, said in cases:
        text = refused(capsys, "grad", "x**2", "--at", "x=3", *extra)
        assert option in text and said in text and "value" not in text
    assert list(tmp_path.iterdir()) == []


# -- fit: outputs and options ------------------------------------------------------------------


def test_fit_extra_outputs_inside_the_run_folder_are_refused_before_it_is_made(
    table, tmp_path, capsys
):
    out = tmp_path / "run"
    cases = [
        ("--json", str(out)),
        ("--json", str(out / "config.json")),
        ("--animate", str(out / "a.gif")),
        ("--tensorboard", str(out / "tb")),
    ]
    for option, path in cases:
        extra = ["--optimizer", "sgd", "--epochs", "3"] if option == "--animate" else []
        text = refused(capsys, *fit_args(table, *extra, "--out", str(out), option, path))
        assert f"{option} {path}: inside the run folder" in text
        assert not out.exists()


@needs_proc
@pytest.mark.parametrize("command", ["fit", "train", "resume"])
def test_tensorboard_folders_that_cannot_be_used_are_refused(command, table, fit_run, capsys):
    argv = {
        "fit": fit_args(table, "--out", str(table.parent / "r")),
        "train": [
            "train",
            "mnist-sample",
            "--classes",
            "3,7",
            "--epochs",
            "1",
            "--out",
            str(table.parent / "r"),
        ],
        "resume": ["resume", str(fit_run[0])],
    }[command]
    for folder, said in [(str(table), "exists and is not a directory"),
                         ("/proc/self/tb", "not writable"), ("", "give a folder")]:  # fmt: skip
        text = refused(capsys, *argv, "--tensorboard", folder)
        assert "--tensorboard" in text and said in text
    assert not (table.parent / "r").exists()


def test_fit_options_that_contradict_each_other_are_refused(table, tmp_path, capsys):
    out = str(tmp_path / "r")
    text = refused(capsys, *fit_args(table, "--fix", "a=1", "--fix", "a=2", "--out", out))
    assert "--fix: a is fixed twice (1 and 2)" in text
    text = refused(capsys, *fit_args(table, "--bounds", "a=0:1", "--fix", "a=2", "--out", out))
    assert "--fix a=2 is outside --bounds a=0:1" in text
    text = refused(capsys, *fit_args(table, "--by", "g", "--tensorboard", "tb", "--out", out))
    assert "--by g" in text and "does not take --tensorboard" in text
    for extra in (["--port", "70000"], ["--host", "0.0.0.0"]):
        text = refused(capsys, *fit_args(table, *extra, "--out", out))
        assert f"{extra[0]} set the live page's address: add --watch" in text
    assert not (tmp_path / "r").exists() and not (tmp_path / "tb").exists()


def test_fit_watch_host_that_is_not_this_machine_names_host(table, tmp_path, capsys):
    for host in ("no such host!", ""):
        text = refused(capsys, *fit_args(table, "--watch", "--host", host,
                                         "--out", str(tmp_path / "r")))  # fmt: skip
        assert "--host" in text and "--port" not in text


def test_fit_sigma_so_small_that_the_weights_overflow_names_sigma(table, tmp_path, capsys):
    text = table.read_text().replace(",0.5,", ",1e-300,")
    table.write_text(text)
    said = refused(capsys, *fit_args(table, "--sigma", "s", "--out", str(tmp_path / "r")))
    assert "divided by --sigma (as small as 1e-300) overflow float64" in said
    assert "--init" not in said


# -- fit --by: groups too small to fit ---------------------------------------------------------


def test_by_column_whose_groups_all_have_too_few_rows_is_refused_at_once(table, tmp_path, capsys):
    out = tmp_path / "r"
    text = refused(capsys, *fit_args(table, "--by", "name", "--out", str(out)))
    assert "--by name: none of its 24 groups has enough rows to fit" in text
    assert "the largest has 1, the formula has 3 free parameters" in text
    assert not out.exists()
    # holding two parameters leaves one to fit per row: that works
    assert main(fit_args(table, "--by", "name", "--fix", "a=2,b=3", "--out", str(out))) == 0


def test_fit_many_with_every_group_failed_returns_them_failed():
    """It looped for ever when no group was left to fit (all too small)."""
    f = parse_formula("a*x + b", inputs=["x"])
    x = torch.arange(5, dtype=torch.float64)
    fits = fit_many(f, x, 2 * x, torch.arange(5), [1.0, 1.0], f.params)
    assert fits.stopped == ["failed"] * 5
    assert all(r == "too few rows: 1 for 2 parameters" for r in fits.reasons)
    assert torch.isnan(fits.params).all()


# -- predict on fit runs -----------------------------------------------------------------------


def test_predict_never_writes_over_its_input_or_into_the_run(fit_run, tmp_path, capsys):
    run, _ = fit_run
    new = tmp_path / "new.csv"
    new.write_text("x\n1\n2\n")
    before = listing(run)
    cases = [
        (["--out", str(new)], "--out", "that is the input file"),
        (["--json", str(new)], "--json", "that is the input file"),
        (["--out", str(run / "config.json")], "--out", "inside the run folder"),
        (["--out", str(tmp_path / "p.csv"), "--json", str(tmp_path / "p.csv")], "--out and --json",
         "give two file names"),
    ]  # fmt: skip
    for extra, option, said in cases:
        text = refused(capsys, "predict", str(run), str(new), *extra)
        assert option in text and said in text
    assert new.read_text() == "x\n1\n2\n" and listing(run) == before
    assert not (tmp_path / "p.csv").exists()


@needs_proc
def test_predict_out_that_cannot_be_written_is_refused(fit_run, tmp_path, capsys):
    new = tmp_path / "new.csv"
    new.write_text("x\n1\n")
    text = refused(capsys, "predict", str(fit_run[0]), str(new), "--out", "/proc/self/p.csv")
    assert "--out /proc/self/p.csv" in text and "not writable" in text


# -- train --model mean ------------------------------------------------------------------------


def test_mean_model_refuses_the_options_of_a_trained_model(tmp_path, capsys):
    base = ["train", "mnist-sample", "--classes", "3,7", "--model", "mean"]
    for extra in (["--epochs", "5"], ["--lr", "auto"], ["--hidden", "5"], ["--book"],
                  ["--steps", "9", "--optimizer", "lbfgs"], ["--tensorboard", "tb"]):  # fmt: skip
        text = refused(capsys, *base, *extra, "--out", str(tmp_path / "r"))
        assert "--model mean computes each class's mean image in one pass" in text
        assert all(e in text for e in extra if e.startswith("--"))
    assert list(tmp_path.iterdir()) == []


# -- resume ------------------------------------------------------------------------------------


def test_resume_of_a_folder_that_is_no_run_writes_nothing_there(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep")
    text = refused(capsys, "resume", str(folder))
    assert "not a descent run folder" in text
    assert listing(folder) == {"notes.txt": b"keep"} and not (folder / ".descent").exists()


def test_resume_of_runs_without_a_loop_says_why(table, tmp_path, capsys):
    by, mean = tmp_path / "by", tmp_path / "mean"
    assert main(fit_args(table, "--by", "g", "--out", str(by))) == 0
    assert main(["train", "mnist-sample", "--classes", "3,7", "--model", "mean", "-q",
                 "--out", str(mean)]) == 0  # fmt: skip
    capsys.readouterr()
    for extra in ([], ["--epochs", "50"]):
        text = refused(capsys, "resume", str(by), *extra)
        assert "is a `descent fit --by g` run" in text and "nothing to resume" in text
        text = refused(capsys, "resume", str(mean), *extra)
        assert "is a `descent train --model mean` run" in text and "nothing to resume" in text


# -- report and watch --------------------------------------------------------------------------


@needs_proc
def test_report_out_that_cannot_be_written_is_refused(fit_run, tmp_path, capsys):
    run, _ = fit_run
    for out, said in [("/proc/self/r.html", "not writable"), (str(tmp_path), "is a folder")]:
        assert said in refused(capsys, "report", str(run), "--out", out)


def test_report_html_that_is_a_folder_is_refused_with_its_path(fit_run, tmp_path, capsys):
    import shutil

    run = Path(shutil.copytree(fit_run[0], tmp_path / "run"))
    (run / "report.html").unlink()
    (run / "report.html").mkdir()
    text = refused(capsys, "report", str(run))
    assert "report.html: cannot be written (it is a folder)" in text


@pytest.mark.parametrize("interval", ["0", "-1", "nan", "inf", "1e9"])
def test_watch_interval_out_of_range_is_refused(fit_run, capsys, interval):
    text = refused(capsys, "watch", str(fit_run[0]), "--interval", interval)
    assert f"--interval {float(interval)}" in text and "from 0.1 to 3600" in text


# -- the writes underneath ---------------------------------------------------------------------


def test_an_atomic_write_that_fails_names_the_path_and_leaves_no_temporary(tmp_path):
    (tmp_path / "dir").mkdir()
    with pytest.raises(OutputError, match="dir: cannot be written"):
        atomic_write_text(tmp_path / "dir", "x")
    assert sorted(os.listdir(tmp_path)) == ["dir"]
    assert list((tmp_path / "dir").iterdir()) == []


@needs_proc
def test_check_writable_tries_instead_of_trusting_permissions():
    """os.access says yes to root everywhere; /proc takes no new file from anyone."""
    from descent.errors import ConfigError

    with pytest.raises(ConfigError, match="not writable"):
        check_writable("/proc/self/x.json", "--json")


def test_fit_json_that_is_its_own_data_file_is_refused(table, tmp_path, capsys):
    before = table.read_bytes()
    text = refused(capsys, *fit_args(table, "--out", str(tmp_path / "r"), "--json", str(table)))
    assert f"--json {table}: that is the run's data" in text
    assert table.read_bytes() == before and not (tmp_path / "r").exists()


@pytest.mark.parametrize("option", ["--by", "--sigma"])
def test_by_or_sigma_naming_the_formulas_input_says_so(table, tmp_path, capsys, option):
    text = refused(capsys, *fit_args(table, option, "x", "--out", str(tmp_path / "r")))
    assert f"{option} x: that column is an input of the formula" in text


@pytest.mark.parametrize("change", [{"data": True}, {"y": 3}, {"classes": 7}])
def test_report_of_a_run_whose_config_was_edited_never_raises(fit_run, tmp_path, capsys, change):
    """The fuzz suite's find: a config.json with "data": true raised TypeError in report."""
    import json
    import shutil

    run = Path(shutil.copytree(fit_run[0], tmp_path / "run"))
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, **change}))
    assert main(["report", str(run)]) == 0
    assert "report:" in capsys.readouterr().out
