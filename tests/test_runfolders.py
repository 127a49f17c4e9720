"""A run folder is owned by one run: a used --out is refused, --overwrite removes the
previous run's files and nothing else, each run has an id in all its files, a second
writer is refused by the folder's lock, and resume takes only its own run's checkpoints."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from rich.console import Console

from descent.cli import main
from descent.commands.config import FitConfig, TrainConfig
from descent.commands.fit import fit_command
from descent.commands.resume import resume_command
from descent.commands.train import train_command
from descent.core.events import Callback, CancelFit, StopReason
from descent.errors import RunFolderError
from descent.io.checkpoints import list_checkpoints, load_checkpoint
from descent.io.rundir import RunDir, check_out

NIST = Path(__file__).resolve().parents[1] / "bench" / "nist"
QUIET = Console(quiet=True)
MISRA = dict(
    data=str(NIST / "Misra1a.csv"),
    model="b1*(1-exp(-b2*x))",
    y="y",
    init={"b1": 500.0, "b2": 1e-4},
    quiet=True,
    plots=False,
)
FIT_ARGS = [str(NIST / "Misra1a.csv"), "--model", "b1*(1-exp(-b2*x))", "--y", "y"]
FIT_ARGS += ["--init", "b1=500,b2=1e-4", "--no-plots", "--quiet"]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (hidden ones too) -> the SHA-256 of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def run_ids(folder: Path) -> set[str]:
    """The run ids written in config.json, summary.json, every checkpoint and the marker."""
    ids = {json.loads((folder / name).read_text())["run_id"] for name in ("config.json",
           "summary.json", ".descent/run.json")}  # fmt: skip
    ids |= {load_checkpoint(p)[1]["run_id"] for p in list_checkpoints(folder / "checkpoints")}
    return ids


def test_each_run_has_one_id_in_all_its_files(tmp_path):
    out = tmp_path / "run"
    fit_command(FitConfig(**MISRA, out=str(out), checkpoint_every="5"), QUIET)
    assert len(list_checkpoints(out / "checkpoints")) > 1
    (run_id,) = run_ids(out)
    assert len(run_id) == 32


def test_a_used_out_is_refused_and_left_as_it_was(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["fit", *FIT_ARGS, "--out", str(out)]) == 0
    before = snapshot(out)
    capsys.readouterr()
    assert main(["fit", *FIT_ARGS, "--optimizer", "lbfgs", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--out {out}: holds a descent fit run" in err and f"descent resume {out}" in err
    assert "--overwrite" in err and "Traceback" not in err
    assert snapshot(out) == before


def test_a_folder_that_is_not_a_run_is_never_written(tmp_path, capsys):
    mine = tmp_path / "mine"
    (mine / "plots").mkdir(parents=True)
    for name in ("config.json", "metrics.csv", "plots/loss.png"):
        (mine / name).write_text(f"the user's own {name}")
    before = snapshot(mine)
    for extra in ([], ["--overwrite"]):
        assert main(["train", "mnist-sample", "--epochs", "1", "--out", str(mine), *extra]) == 2
        err = capsys.readouterr().err
        assert "not a descent run folder" in err and "config.json, metrics.csv, plots/" in err
        assert snapshot(mine) == before and not (mine / ".descent").exists()


def test_overwrite_removes_the_previous_runs_files_and_nothing_else(tmp_path, capsys):
    out = tmp_path / "run"
    fit_command(FitConfig(**MISRA, out=str(out), checkpoint_every="5"), QUIET)
    (old_id,) = run_ids(out)
    old_checkpoints = {p.name for p in list_checkpoints(out / "checkpoints")}
    # the user's own files, beside and among the run's
    (out / "notes.txt").write_text("mine")
    (out / "plots").mkdir()
    (out / "plots" / "drawing.png").write_bytes(b"mine")
    (out / "checkpoints" / "README").write_text("mine")
    capsys.readouterr()
    assert main(["fit", *FIT_ARGS, "--epochs", "3", "--optimizer", "sgd", "--out", str(out),
                 "--overwrite"]) == 0  # fmt: skip
    assert "kept what the previous run did not write: checkpoints/, notes.txt, plots/" in (
        capsys.readouterr().out
    )
    (new_id,) = run_ids(out)  # every file that holds an id is the new run's
    assert new_id != old_id
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "plots" / "drawing.png").read_bytes() == b"mine"
    assert (out / "checkpoints" / "README").read_text() == "mine"
    new = {p.name for p in list_checkpoints(out / "checkpoints")}
    assert new == {"ckpt-e000003-b000000.json"} and not new & (old_checkpoints - new)
    assert json.loads((out / "summary.json").read_text())["optimizer"] == "sgd"


def test_a_second_writer_is_refused_while_a_run_holds_the_folder(tmp_path, capsys):
    out = tmp_path / "run"
    with RunDir.create(out, "train"):
        assert main(["fit", *FIT_ARGS, "--out", str(out), "--overwrite"]) == 2
        err = capsys.readouterr().err
        assert f"{out}: in use by another descent run (process {os.getpid()}, descent train)" in err
        with pytest.raises(RunFolderError, match="in use"):
            resume_command(out, QUIET)
    with RunDir.create(out, "train", overwrite=True):  # free again once the first closed
        pass


HOLDER = textwrap.dedent(
    """
    import sys, time
    from rich.console import Console
    from descent.commands.config import TrainConfig
    from descent.commands.train import train_command
    from descent.core.events import Callback

    class Slow(Callback):
        order = 100  # after the Checkpointer: epoch 1's checkpoint is written first
        def after_epoch(self):
            print("EPOCH", flush=True)
            time.sleep(600)

    cfg = TrainConfig(classes=["3", "7"], epochs=3, out=sys.argv[1], quiet=True)
    train_command(cfg, Console(quiet=True), callbacks=[Slow()])
    """
)


def test_two_processes_cannot_write_one_folder_and_a_killed_one_frees_it(tmp_path):
    out = tmp_path / "run"
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    holder = subprocess.Popen(
        [sys.executable, str(script), str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while holder.stdout.readline().strip() != "EPOCH":  # epoch 1 written, then it waits
            assert holder.poll() is None and time.monotonic() < deadline
        second = subprocess.run(
            [sys.executable, "-m", "descent", "train", "mnist-sample", "--out", str(out),
             "--overwrite"], capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert second.returncode == 2
        assert f"in use by another descent run (process {holder.pid}, descent train)" in (
            second.stderr
        )
    finally:
        holder.kill()  # SIGKILL: the OS releases the lock with the process
        holder.wait(timeout=60)
    resume_command(out, QUIET, quiet=True)  # the lock is free, and the run continues
    assert json.loads((out / "summary.json").read_text())["epochs"] == 3


class InterruptAt(Callback):
    """Stops a fit as Ctrl-C would, at batch `batch` of epoch `epoch` + 1."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.at = (epoch, batch)

    def after_step(self):
        if (self.learner.epoch, self.learner.batches_done) == self.at:
            raise CancelFit(StopReason.INTERRUPTED, "interrupted by the test")


def test_resume_ignores_a_checkpoint_of_another_run_in_the_folder(tmp_path):
    """The mixing of the issue: run A finished, run B (other settings) in the same folder
    was interrupted, and A's newer checkpoint sat beside B's."""
    a = tmp_path / "a"
    train_command(TrainConfig(classes=["3", "7"], epochs=4, out=str(a), quiet=True), QUIET)
    whole = tmp_path / "whole"
    b_cfg = dict(classes=["3", "7"], epochs=3, model="mlp", hidden=16, patience=0, quiet=True)
    train_command(TrainConfig(**b_cfg, out=str(whole)), QUIET)
    b = tmp_path / "b"
    train_command(TrainConfig(**b_cfg, out=str(b)), QUIET, callbacks=[InterruptAt(1, 3)])
    newest = list_checkpoints(a / "checkpoints")[-1]  # epoch 4: newer than any of B's
    for path in (newest, newest.with_suffix(".safetensors")):
        shutil.copy(path, b / "checkpoints" / path.name)
    console = Console(record=True, width=300)
    result = resume_command(b, console, quiet=True)
    assert "written by another run" in console.export_text()
    assert result.model.kind == "mlp" and result.summary["epochs"] == 3
    old, new = (json.loads((d / "summary.json").read_text()) for d in (whole, b))
    strip = lambda h: [{k: v for k, v in r.items() if k != "time"} for r in h]  # noqa: E731
    assert strip(old["history"]) == strip(new["history"])


def test_overwrite_removes_nested_runs_and_half_written_files(tmp_path):
    out = tmp_path / "demo"
    with RunDir.create(out, "demo") as run:
        run.file("summary.json").write_text("{}")
        (out / ".summary.json.abc123.tmp").write_text("half")  # a write cut short
        inner_path = run.subrun("digits")
        with RunDir.create(inner_path, "train") as inner:
            inner.plot("loss.png").parent.mkdir(parents=True)
            inner.plot("loss.png").write_bytes(b"png")
            (inner.checkpoints).mkdir()
            ckpt = inner_path / "checkpoints" / "ckpt-e000001-b000000.json"
            ckpt.write_text(json.dumps({"meta": {"run_id": inner.run_id}}))
            (inner_path / "checkpoints" / "ckpt-e000002-b000000.json").write_text("{}")
    (out / "digits" / "mine.txt").write_text("mine")
    with RunDir.create(out, "demo", overwrite=True):
        pass
    left = sorted(str(p.relative_to(out)) for p in out.rglob("*") if ".descent" not in p.parts)
    # the checkpoint JSON of no run (not the inner run's) stays: nothing says it is its
    assert left == [
        "digits",
        "digits/checkpoints",
        "digits/checkpoints/ckpt-e000002-b000000.json",
        "digits/mine.txt",
    ]


def test_a_damaged_run_record_is_refused_not_followed(tmp_path):
    out = tmp_path / "run"
    with RunDir.create(out, "train") as run:
        run.file("config.json").write_text("{}")
    marker = json.loads((out / ".descent" / "run.json").read_text())
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (out / ".descent" / "run.json").write_text(json.dumps({**marker, "files": ["../victim.txt"]}))
    with pytest.raises(RunFolderError, match="not a valid run record"):
        RunDir.create(out, "train", overwrite=True)
    assert victim.read_text() == "keep me"


def test_check_out_accepts_new_empty_and_claimed_but_unwritten_folders(tmp_path):
    check_out(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    check_out(tmp_path / "empty")
    with RunDir.create(tmp_path / "claimed", "fit"):
        pass
    (tmp_path / "claimed" / ".descent" / "run.json").unlink()  # died before its record
    check_out(tmp_path / "claimed")
