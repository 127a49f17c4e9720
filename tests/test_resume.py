"""Checkpoints, exact resume and clean interruption: real processes, real signals."""

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from rich.console import Console
from safetensors.torch import load_file

from descent.callbacks.stopping import EarlyStopping
from descent.cli import main
from descent.commands.config import FitConfig, TrainConfig
from descent.commands.fit import fit_command
from descent.commands.resume import resume_command as resume
from descent.commands.train import train_command
from descent.core.learner import Learner
from descent.data.batches import Batches
from descent.data.synthetic import quadratic
from descent.errors import CheckpointError
from descent.io.checkpoints import list_checkpoints, load_checkpoint, save_checkpoint
from descent.io.models import load_model
from descent.models.function import FunctionModel

NIST = Path(__file__).resolve().parents[1] / "bench" / "nist"
QUIET = Console(quiet=True)

# A small, quick training job whose every state matters: an MLP (Adam moments),
# early stopping (its counter and best parameters), mid-epoch batches.
TRAIN = dict(
    source="mnist-sample",
    classes=["3", "7"],
    model="mlp",
    hidden=32,
    epochs=5,
    patience=2,
    batch_size=64,
    quiet=True,
)
FIT = dict(
    data=str(NIST / "Lanczos3.csv"),
    model="b1*exp(-b2*x) + b3*exp(-b4*x) + b5*exp(-b6*x)",
    y="y",
    init={"b1": 1.2, "b2": 0.3, "b3": 5.6, "b4": 5.5, "b5": 6.5, "b6": 7.6},
    quiet=True,
    plots=False,
)

KILLER = textwrap.dedent(
    """
    import json, os, signal, sys
    from rich.console import Console
    from descent.commands.config import FitConfig, TrainConfig
    from descent.core.events import Callback
    from descent.commands.fit import fit_command
    from descent.commands.train import train_command

    kind, cfg, where = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    epoch, batch = int(sys.argv[4]), int(sys.argv[5])

    class Kill(Callback):
        order = 0  # before the Checkpointer: the checkpoint of this moment is never written
        def after_step(self):
            at = (self.learner.epoch, self.learner.batches_done)
            if where == "batch" and at == (epoch, batch):
                os.kill(os.getpid(), signal.SIGKILL)
        def after_epoch(self):
            if where == "epoch" and len(self.learner.history) == epoch:
                os.kill(os.getpid(), signal.SIGKILL)

    job = train_command if kind == "train" else fit_command
    config = TrainConfig(**cfg) if kind == "train" else FitConfig(**cfg)
    job(config, Console(quiet=True), callbacks=[Kill()])
    """
)


def killed_run(tmp_path, kind, cfg, where, epoch, batch=0):
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    proc = subprocess.run(
        [sys.executable, str(script), kind, json.dumps(cfg), where, str(epoch), str(batch)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def assert_same_run(a: Path, b: Path):
    ta, tb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    strip = lambda h: [{k: v for k, v in r.items() if k != "time"} for r in h]  # noqa: E731
    assert strip(sa["history"]) == strip(sb["history"])
    assert sa["stopped"] == sb["stopped"]
    return sa


@pytest.fixture(scope="module")
def uninterrupted_train(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "run"
    train_command(TrainConfig(**TRAIN, out=str(out)), QUIET)
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_sigkill_mid_epoch_then_resume_is_bit_exact(tmp_path, uninterrupted_train, seed):
    import random

    rng = random.Random(seed)
    epoch, batch = rng.randint(1, 2), rng.randint(1, 12)  # 13 batches an epoch
    out = tmp_path / "run"
    cfg = {**TRAIN, "out": str(out), "checkpoint_every": "4steps"}
    killed_run(tmp_path, "train", cfg, "batch", epoch, batch)
    assert not (out / "summary.json").exists()  # it really died
    resume(out, QUIET, quiet=True)
    summary = assert_same_run(out, uninterrupted_train)
    assert summary["stopped"] in ("early_stopping", "max_epochs")


@pytest.mark.parametrize("schedule", ["one-cycle", "plateau"])
def test_sigkill_with_a_schedule_then_resume_is_bit_exact(tmp_path, schedule):
    cfg = {**TRAIN, "schedule": schedule, "patience": 0, "epochs": 4, "model": "linear"}
    whole = tmp_path / "whole"
    train_command(TrainConfig(**cfg, out=str(whole)), QUIET)
    out = tmp_path / "run"
    killed_run(tmp_path, "train", {**cfg, "out": str(out), "checkpoint_every": "5steps"},
               "batch", 2, 9)  # fmt: skip
    resume(out, QUIET, quiet=True)
    assert_same_run(out, whole)


def test_sigkill_between_epochs_then_resume_is_bit_exact(tmp_path, uninterrupted_train):
    out = tmp_path / "run"
    killed_run(tmp_path, "train", {**TRAIN, "out": str(out)}, "epoch", 3)
    names = [p.name for p in list_checkpoints(out / "checkpoints")]
    assert names[-1] == "ckpt-e000002-b000000.json"  # epoch 3's checkpoint was never written
    resume(out, QUIET, quiet=True)
    assert_same_run(out, uninterrupted_train)


MISRA = dict(
    data=str(NIST / "Misra1a.csv"),
    model="b1*(1-exp(-b2*x))",
    y="y",
    init={"b1": 500.0, "b2": 1e-4},
    quiet=True,
    plots=False,
)


@pytest.mark.parametrize("base, optimizer", [(FIT, "lm"), (MISRA, "lbfgs")])
def test_sigkill_during_a_fit_then_resume_is_bit_exact(tmp_path, base, optimizer):
    cfg = {**base, "optimizer": optimizer, "epochs": 60, "checkpoint_every": "5"}
    whole = tmp_path / "whole"
    fit_command(FitConfig(**cfg, out=str(whole)), QUIET)
    out = tmp_path / "run"
    killed_run(tmp_path, "fit", {**cfg, "out": str(out)}, "batch", 23, 1)
    resume(out, QUIET, quiet=True)
    assert_same_run(out, whole)
    p = json.loads((out / "params.json").read_text())["params"]
    assert p == json.loads((whole / "params.json").read_text())["params"]


def test_resume_of_a_finished_run_changes_nothing(tmp_path, uninterrupted_train):
    result = resume(uninterrupted_train, QUIET, quiet=True)
    assert result.fit_result.stopped in ("early_stopping", "max_epochs")
    assert_same_run(uninterrupted_train, uninterrupted_train)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sigint_and_sigterm_stop_train_cleanly(tmp_path, sig, code):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "descent",
            "train",
            "mnist-sample",
            "--model",
            "mlp",
            "--epochs",
            "25",
            "--patience",
            "0",
            "--checkpoint-every",
            "0",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while "train_loss" not in proc.stdout.readline():  # the epoch table has begun
        assert proc.poll() is None, proc.stderr.read()
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    assert f"interrupted by {sig.name}" in stdout and f"descent resume {out}" in stdout
    state, _ = load_checkpoint(list_checkpoints(out / "checkpoints")[-1])
    assert state["stopped"] == "interrupted" and state["epochs_done"] < 25
    done = subprocess.run(
        [sys.executable, "-m", "descent", "resume", str(out), "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped"] == "max_epochs" and len(summary["history"]) == 25


def test_kill_while_a_checkpoint_is_written_leaves_the_previous_intact(tmp_path):
    out = tmp_path / "run"
    cfg = {
        **TRAIN,
        "hidden": 3000,
        "epochs": 2,
        "patience": 0,
        "out": str(out),
        "checkpoint_every": "1steps",
    }
    script = tmp_path / "big.py"
    script.write_text(
        "import json, sys\nfrom rich.console import Console\n"
        "from descent.commands.config import TrainConfig\n"
        "from descent.commands.train import train_command\n"
        "train_command(TrainConfig(**json.loads(sys.argv[1])), Console(quiet=True))\n"
    )
    folder = out / "checkpoints"
    proc = subprocess.Popen([sys.executable, str(script), json.dumps(cfg)])
    caught = False
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        names = os.listdir(folder) if folder.is_dir() else []
        if any(n.endswith(".json") for n in names) and any(n.endswith(".tmp") for n in names):
            proc.kill()  # SIGKILL in the middle of a write
            caught = True
            break
    proc.wait()
    assert caught, "the run ended before a write could be caught"
    leftovers = [n for n in os.listdir(folder) if n.endswith(".tmp")]
    assert leftovers  # we did catch it half-way
    for path in list_checkpoints(folder):  # every committed checkpoint is whole
        load_checkpoint(path)
    resume(out, QUIET, quiet=True)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped"] == "max_epochs" and len(summary["history"]) == 2


def test_learner_state_dict_round_trip_mid_epoch(roller):
    t, speed = roller
    u = (t - t.mean()) / t.std()

    def learner():
        model = FunctionModel(quadratic, "abc", [0.0, 0.0, 0.0])
        return Learner(
            model,
            Batches(u[:16], speed[:16], 4, seed=3),
            Batches(u[16:], speed[16:]),
            optimizer="adam",
            lr=0.1,
            progress=False,
            callbacks=[EarlyStopping(patience=50)],
        )

    whole = learner()
    whole.fit(6)
    part = learner()

    from descent.core.events import Callback, CancelFit

    class StopAt(Callback):
        def after_step(self):
            if self.learner.steps == 13:  # epoch 4, batch 1
                raise CancelFit("interrupted", "test")

    part.fit(6, callbacks=[StopAt()])
    state = part.state_dict()
    assert (state["epochs_done"], state["batches_done"]) == (3, 1)
    fresh = learner()
    fresh.load_state_dict(state)
    fresh.fit(6)
    assert torch.equal(fresh.model.params, whole.model.params)
    assert fresh.history == whole.history


# -- refused files ----------------------------------------------------------------


class Evil:
    """A pickle that would create a file when unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("small") / "run"
    train_command(
        TrainConfig(source="mnist-sample", classes=["3", "7"], epochs=2, out=str(out), quiet=True),
        QUIET,
    )
    return out


def copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_pickle_payloads_are_refused_and_never_run(tmp_path, small_run):
    run = copy_run(small_run, tmp_path / "run")
    sentinel = tmp_path / "PWNED"
    payload = pickle.dumps(Evil(str(sentinel)))
    (run / "model.safetensors").write_bytes(payload)
    with pytest.raises(CheckpointError, match="pickle.*never loads"):
        load_model(run)
    torch.save({"w": torch.zeros(3)}, run / "model.safetensors")  # torch.save's zip format
    with pytest.raises(CheckpointError, match="pickle"):
        load_model(run)
    (run / "model.json").write_bytes(payload)
    with pytest.raises(CheckpointError, match="model.json"):
        load_model(run)
    ckpt = list_checkpoints(run / "checkpoints")[-1]
    ckpt.with_suffix(".safetensors").write_bytes(payload)
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(ckpt)
    ckpt.write_bytes(payload)
    with pytest.raises(CheckpointError, match="not a valid checkpoint"):
        load_checkpoint(ckpt)
    assert main(["predict", str(run), str(tmp_path / "x.png")]) == 2
    assert not sentinel.exists()


def test_truncated_and_corrupt_files_are_refused(tmp_path, small_run):
    run = copy_run(small_run, tmp_path / "run")
    data = (run / "model.safetensors").read_bytes()
    (run / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors.*(truncated|corrupt)"):
        load_model(run)
    (run / "model.safetensors").write_bytes(data)
    (run / "model.json").write_text('{"format": "descent-model", "version": 1')  # cut short
    with pytest.raises(CheckpointError, match="truncated"):
        load_model(run)
    ckpt = list_checkpoints(run / "checkpoints")[-1]
    tensors = ckpt.with_suffix(".safetensors")
    tensors.write_bytes(tensors.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(ckpt)


@pytest.mark.parametrize(
    "change, text",
    [
        ({"format": "keras-model"}, "not a descent model"),
        ({"version": 2}, "version 2"),
        ({"kind": "transformer"}, "unknown model kind"),
        ({"args": {"n_pixels": 784, "n_outputs": 3, "init_std": 0.0, "seed": 0}}, "shape"),
    ],
)
def test_model_of_another_format_version_or_shape_is_refused(tmp_path, small_run, change, text):
    run = copy_run(small_run, tmp_path / "run")
    desc = json.loads((run / "model.json").read_text())
    (run / "model.json").write_text(json.dumps({**desc, **change}))
    with pytest.raises(CheckpointError, match=text):
        load_model(run)


def test_checkpoint_of_another_version_or_shape_is_refused(tmp_path, small_run):
    run = copy_run(small_run, tmp_path / "run")
    ckpt = list_checkpoints(run / "checkpoints")[-1]
    doc = json.loads(ckpt.read_text())
    ckpt.write_text(json.dumps({**doc, "version": 7}))
    with pytest.raises(CheckpointError, match="version 7"):
        load_checkpoint(ckpt)
    ckpt.write_text(json.dumps({**doc, "format": "lightning"}))
    with pytest.raises(CheckpointError, match="not a descent checkpoint"):
        load_checkpoint(ckpt)
    # a run whose config now asks for another model: the checkpoint's shapes do not fit
    for p in list_checkpoints(run / "checkpoints")[:-1]:
        p.unlink()
    ckpt.write_text(json.dumps(doc))
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "model": "mlp"}))
    with pytest.raises(CheckpointError, match="tensors do not match the model"):
        resume(run, QUIET, quiet=True)


def test_resume_errors_name_the_problem(tmp_path, capsys, small_run):
    assert main(["resume", str(tmp_path / "nowhere")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text(
        '{"command": "train", "source": "mnist-sample"}'
    )
    assert main(["resume", str(tmp_path / "empty")]) == 2
    assert "not a descent run folder" in capsys.readouterr().err
    run = copy_run(small_run, tmp_path / "run")
    for path in (run / "checkpoints").iterdir():
        path.unlink()
    assert main(["resume", str(run)]) == 2
    assert "no checkpoint to resume from" in capsys.readouterr().err


def test_checkpoints_keep_the_newest_and_the_best(tmp_path):
    out = tmp_path / "run"
    train_command(
        TrainConfig(
            source="mnist-sample",
            classes=["3", "7"],
            epochs=8,
            patience=0,
            keep=2,
            out=str(out),
            quiet=True,
            lr=0.05,
        ),
        QUIET,
    )
    names = [p.name for p in list_checkpoints(out / "checkpoints")]
    history = json.loads((out / "summary.json").read_text())["history"]
    best = min(history, key=lambda r: r["valid_loss"])["epoch"]
    assert names[-2:] == ["ckpt-e000007-b000000.json", "ckpt-e000008-b000000.json"]
    assert f"ckpt-e{best:06d}-b000000.json" in names and len(names) <= 3


def test_save_checkpoint_round_trips_awkward_values(tmp_path, roller):
    t, speed = roller
    model = FunctionModel(quadratic, "abc", [0.0, 0.0, 0.0])
    learner = Learner(model, Batches(t, speed), progress=False, guards=False)
    state = {
        **learner.state_dict(),
        "x": {0: torch.arange(3), "t": (1.5, float("nan"), float("inf"), None)},
        "lst": [torch.ones(2, 2), {"__sneaky": 1}],
    }
    path = save_checkpoint(tmp_path, state)
    back, _ = load_checkpoint(path)
    assert torch.equal(back["x"][0], torch.arange(3)) and back["x"]["t"][0] == 1.5
    assert back["x"]["t"][2] == float("inf") and back["x"]["t"][3] is None
    assert back["lst"][1] == {"__sneaky": 1}
