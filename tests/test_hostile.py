"""Inputs a hostile or careless user gives: each ends with exit status 2 and a message
that names the option, file or field, never a traceback, and before any work when the
problem is known before it (issue 13's list)."""

import json
import math
import os
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from descent.cli import main
from descent.commands.config import TrainConfig
from descent.commands.train import train_command
from descent.io.checkpoints import _digest, list_checkpoints

NIST = Path(__file__).resolve().parents[1] / "bench" / "nist"
FIT = [str(NIST / "Misra1a.csv"), "--model", "b1*(1-exp(-b2*x))", "--y", "y"]
FIT += ["--init", "b1=500,b2=1e-4", "--no-plots"]


def refused(capsys, *argv: str) -> str:
    """Run the CLI in-process: it must exit 2 with one error line and no traceback.
    Returns stderr + stdout."""
    try:
        status = main(list(argv))
    except SystemExit as e:  # argparse's own refusals
        status = e.code
    out = capsys.readouterr()
    assert status == 2, out.err + out.out
    assert "error:" in out.err and "Traceback" not in out.err + out.out
    return out.err + out.out


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("small") / "run"
    cfg = TrainConfig(classes=["3", "7"], epochs=2, out=str(out), quiet=True)
    train_command(cfg)
    return out


@pytest.fixture
def run(tmp_path, small_run):
    return Path(shutil.copytree(small_run, tmp_path / "run"))


@pytest.fixture
def digit_png(tmp_path):
    path = tmp_path / "digit.png"
    Image.fromarray((torch.arange(784).reshape(28, 28) % 256).to(torch.uint8).numpy()).save(path)
    return path


# -- outputs that cannot be written: refused before any training --------------------------


@pytest.mark.parametrize("command", ["train", "fit"])
def test_out_and_json_that_cannot_be_written_are_refused_before_training(tmp_path, capsys, command):
    args = ["mnist-sample", "--epochs", "1"] if command == "train" else FIT
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cases = [
        (["--out", str(blocker)], "exists and is not a directory"),
        (["--out", str(blocker / "run")], "is a file, not a directory"),
        (["--out", str(tmp_path / "a"), "--json", str(tmp_path)], "is a folder; give a file"),
        (["--out", str(tmp_path / "b"), "--json", str(blocker / "s.json")], "is a file"),
    ]
    for extra, said in cases:
        text = refused(capsys, command, *args, *extra)
        assert said in text and "train_loss" not in text and "Fitted" not in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing made


def test_an_unwritable_out_is_refused_before_training(tmp_path, capsys, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: real(p, mode) and Path(p) != locked)
    text = refused(capsys, "fit", *FIT, "--out", str(locked / "run"))
    assert f"{locked} is not writable" in text and "choose another --out" in text
    text = refused(capsys, "fit", *FIT, "--out", str(tmp_path / "r"), "--json", f"{locked}/s.json")
    assert "--json" in text and "not writable" in text


def test_predict_json_that_is_a_folder_is_refused_before_predicting(run, digit_png, capsys):
    text = refused(capsys, "predict", str(run), str(digit_png), "--json", str(run))
    assert "--json" in text and "is a folder" in text and "digit.png  " not in text


# -- sizes, seeds and counts: refused before anything is allocated ------------------------


def test_an_absurd_hidden_layer_is_refused_by_its_memory_before_allocation(tmp_path, capsys):
    text = refused(capsys, "train", "mnist-sample", "--model", "mlp", "--hidden", "1000000000",
                   "--out", str(tmp_path / "r"))  # fmt: skip
    assert "--model mlp --hidden 1000000000" in text and "available" in text
    assert "use a smaller --hidden" in text and "GB" in text
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "argv, said",
    [
        (["train", "mnist-sample", "--seed", str(2**70)], "--seed must be at most 4,294,967,295"),
        (["fit", *FIT, "--seed", str(2**70)], "--seed must be at most"),
        (["train", "mnist-sample", "--seed", "-1"], "--seed must be at least 0"),
        (["train", "mnist-sample", "--epochs", str(10**12)], "--epochs must be at most"),
        (["fit", *FIT, "--epochs", str(10**9)], "--epochs must be at most 1,000,000"),
        (["train", "mnist-sample", "--steps", str(10**15)], "--steps must be at most"),
        (["lr-sweep", "mnist-sample", "--lrs", "1e-3:1:100000"], "asks for 100,000 rates"),
        (["lr-sweep", "mnist-sample", "--lrs", ",".join(["0.1"] * 1001)], "1,001 rates"),
        (["lr-sweep", "mnist-sample", "--epochs", str(10**9)], "--epochs must be at most"),
        (["lr-find", "mnist-sample", "--iterations", str(10**9)], "--iterations must be at most"),
    ],
)
def test_counts_and_seeds_out_of_bounds_are_refused(tmp_path, capsys, argv, said):
    assert said in refused(capsys, *argv, "--out", str(tmp_path / "r"))
    assert not (tmp_path / "r").exists()


# -- files read back: config.json -----------------------------------------------------------


@pytest.mark.parametrize(
    "change, said",
    [
        ({"epochs": 2.5}, "field 'epochs' must be an integer or null, got 2.5"),
        ({"deskew": "false"}, "deskew must be true, false or auto, got 'false'"),
        ({"classes": "3,7"}, "field 'classes' must be a list of strings or null"),
        ({"lr": -1.0}, "--lr must be a positive number"),
        ({"batch_size": 0}, "field 'batch_size': --batch-size must be at least 1"),
        ({"seed": 2**70}, "field 'seed': --seed must be at most"),
        ({"optimizer": "rmsprop"}, "unknown --optimizer 'rmsprop'"),
        ({"model": "transformer"}, "unknown --model 'transformer'"),
        ({"surprise": 1}, "unknown fields ['surprise']"),
        ({"run_id": 7}, "field 'run_id' is missing or not a string"),
        ({"fingerprint": {"kind": "file"}}, "field 'fingerprint' is missing or damaged"),
        ({"command": "demo"}, "not the configuration of a train or fit run"),
    ],
)
def test_hand_edited_config_json_is_refused_naming_the_field(run, capsys, change, said):
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, **change}))
    text = refused(capsys, "resume", str(run))
    assert said in text and "config.json" in text


def test_a_100000_deep_config_json_is_a_clear_error(run, capsys):
    (run / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    assert "nested more than 64 levels deep" in refused(capsys, "resume", str(run))
    (run / "config.json").write_text('{"a": ' * 70 + "1" + "}" * 70)  # deep, but parses
    assert "nested more than 64 levels deep" in refused(capsys, "resume", str(run))


def test_nan_in_a_json_file_is_not_json(run, capsys):
    text = (run / "config.json").read_text().replace('"init_std": 0.0', '"init_std": NaN')
    (run / "config.json").write_text(text)
    assert "NaN is not JSON" in refused(capsys, "resume", str(run))


# -- files read back: checkpoints ----------------------------------------------------------


def test_an_edited_checkpoint_json_is_caught_by_its_hash(run, capsys):
    for path in list_checkpoints(run / "checkpoints"):
        doc = json.loads(path.read_text())
        doc["state"]["optimizer"]["param_groups"][0]["lr"] = -0.5  # "a negative lr"
        path.write_text(json.dumps(doc))
    text = refused(capsys, "resume", str(run))
    assert "its SHA-256 does not match its JSON" in text
    assert "no checkpoint of this run can be loaded" in text


def rehash(path: Path, doc: dict) -> None:
    """Write an edited checkpoint JSON with a hash that fits it (a deliberate forgery)."""
    body = {k: v for k, v in doc.items() if k != "sha256"}
    raw = (path.parent / doc["tensors"]).read_bytes()
    path.write_text(json.dumps({**body, "sha256": _digest(body, raw)}))


@pytest.mark.parametrize(
    "edit, said",
    [
        (lambda s: s["optimizer"]["param_groups"][0].update(lr=-0.5), "param_groups.0.lr"),
        (lambda s: s.update(epochs_done=1.5), "field 'state.epochs_done'"),
        (lambda s: s.update(batches_done=-3), "field 'state.batches_done'"),
        (lambda s: s.update(history=[]), "'state.history' has 0 epochs"),
        (lambda s: s.update(batches_done=10**6, train_losses=[]), "'state.train_losses' has 0"),
        (lambda s: s.update(history="x"), "field 'state.history'"),
        (lambda s: s.pop("rng"), "field 'state.rng'"),
    ],
)
def test_a_forged_checkpoint_is_refused_by_its_fields(run, capsys, edit, said):
    for path in list_checkpoints(run / "checkpoints"):
        doc = json.loads(path.read_text())
        edit(doc["state"])
        rehash(path, doc)
    assert said in refused(capsys, "resume", str(run))


# -- files read back: model.json and model.safetensors (predict) ---------------------------


def edit_model(run: Path, **changes) -> None:
    desc = json.loads((run / "model.json").read_text())
    for key, value in changes.items():
        target, _, field = key.rpartition("__")
        (desc[target] if target else desc)[field] = value
    (run / "model.json").write_text(json.dumps(desc))


@pytest.mark.parametrize(
    "changes, said",
    [
        ({"labels": ["3", "7", "9"]}, "'labels' has 3 labels, but the model has 1 output"),
        ({"labels": ["3", "3"]}, "'labels' must be a list of distinct strings"),
        ({"labels": [3, 7]}, "'labels' must be a list of distinct strings"),
        ({"preprocessing__size": [0, 0]}, "'preprocessing.size' must be two positive"),
        ({"preprocessing__size": [-28, -28]}, "'preprocessing.size' must be two positive"),
        ({"preprocessing__size": [28]}, "'preprocessing.size' must be two positive"),
        ({"preprocessing__size": [14, 56]}, None),  # 784 pixels too: allowed
        ({"preprocessing__size": [27, 28]}, "756 pixels, but the model takes 784"),
        ({"preprocessing__size": "28x28"}, "'preprocessing.size' must be [height, width]"),
        ({"preprocessing__deskew": "yes"}, "'preprocessing.deskew' must be true or false"),
        ({"args__n_pixels": "784"}, "'args.n_pixels' must be an integer"),
        ({"args__n_outputs": 0}, "'args.n_outputs' is a size: at least 1"),
        ({"args__seed": 2**70}, "'args.seed': --seed must be at most"),
        ({"args__surprise": 1}, "args ['surprise'] are not arguments of PixelClassifier"),
        ({"args__n_outputs": 3}, "does not match the shapes its args give"),
        ({"args": None}, "field 'args' must be an object"),
        ({"tensors": {"weights": "big"}}, "field 'tensors' must map names to shapes"),
        ({"dtype": "int64"}, "field 'dtype': unknown dtype"),
        ({"kind": ["pixels"]}, "unknown model kind"),
    ],
)
def test_hand_edited_model_json_is_refused_naming_the_field(run, digit_png, capsys, changes, said):
    edit_model(run, **changes)
    if said is None:
        assert main(["predict", str(run), str(digit_png), "--resize"]) == 0
        return
    text = refused(capsys, "predict", str(run), str(digit_png))
    assert said in text and "model.json" in text


def test_absurd_sizes_in_model_json_are_refused_before_allocating(run, digit_png, capsys):
    n = 10**10  # 40 GB of float32 weights
    edit_model(run, args__n_pixels=n, tensors={"weights": [1, n], "bias": [1]},
               preprocessing__size=[1, n])  # fmt: skip
    text = refused(capsys, "predict", str(run), str(digit_png))
    assert "the pixels model would need about 74.5 GB of memory" in text
    assert "available (MemAvailable in /proc/meminfo)" in text
    edit_model(run, args__n_pixels=10**30, tensors={"weights": [1, 10**30], "bias": [1]})
    assert "model.json" in refused(capsys, "predict", str(run), str(digit_png))


def test_nan_weights_are_refused_at_load(run, digit_png, capsys):
    tensors = load_file(run / "model.safetensors")
    tensors["weights"][0, 5] = math.nan
    save_file(tensors, run / "model.safetensors")
    text = refused(capsys, "predict", str(run), str(digit_png))
    assert "tensor 'weights' holds 1 values that are NaN or infinite" in text


# -- small things ----------------------------------------------------------------------------


def test_an_unknown_option_shows_the_subcommands_usage(capsys):
    text = refused(capsys, "train", "mnist-sample", "--bogus")
    assert text.startswith("usage: descent train ") and "unrecognized arguments: --bogus" in text
    text = refused(capsys, "fit", "x.csv", "--model", "a*x", "--y", "y", "--nope", "3")
    assert text.startswith("usage: descent fit ") and "--nope 3" in text


def test_explain_lines_are_whole_sentences(capsys):
    assert main(["explain"]) == 0
    lines = capsys.readouterr().out.splitlines()
    handler = next(line for line in lines if line.strip().startswith("InterruptHandler"))
    assert handler.endswith("then stop cleanly.")


def test_the_title_of_one_mistake_fits_its_figure():
    from descent.commands.train import _mistakes_figure

    scores = torch.tensor([[2.0, 0.0], [0.0, 2.0], [3.0, 0.0]])  # the last one is wrong
    images = torch.zeros(3, 28, 28, dtype=torch.uint8)
    fig = _mistakes_figure(scores, torch.tensor([0, 1, 1]), images, ["3", "7"])
    fig.canvas.draw()
    box = fig._suptitle.get_window_extent()
    assert fig._suptitle.get_text() == "the validation image it got wrong"
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width
