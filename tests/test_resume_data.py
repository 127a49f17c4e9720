"""Resume continues only on the data the run started with: absolute paths and a content
fingerprint in config.json; changed, moved or missing data is refused naming the file,
and `--data` points a resume at data that moved."""

import json
import shutil
import time
from pathlib import Path

import pytest
from PIL import Image
from rich.console import Console

from descent.cli import main
from descent.commands.config import FitConfig, TrainConfig
from descent.commands.fit import fit_command
from descent.commands.resume import resume_command
from descent.commands.train import train_command
from descent.core.events import Callback, CancelFit, StopReason
from descent.data.images import load_images
from descent.io.fingerprint import fingerprint

NIST = Path(__file__).resolve().parents[1] / "bench" / "nist"
QUIET = Console(quiet=True)


class InterruptAt(Callback):
    """Stops a fit as Ctrl-C would, after `steps` optimizer steps."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def after_step(self):
        if self.learner.steps == self.steps:
            raise CancelFit(StopReason.INTERRUPTED, "interrupted by the test")


@pytest.fixture
def interrupted_fit(tmp_path, monkeypatch):
    """A fit of data/misra.csv, started from tmp_path with a relative path, interrupted."""
    (tmp_path / "data").mkdir()
    shutil.copy(NIST / "Misra1a.csv", tmp_path / "data" / "misra.csv")
    monkeypatch.chdir(tmp_path)
    cfg = FitConfig(
        data="data/misra.csv", model="b1*(1-exp(-b2*x))", y="y", optimizer="lbfgs", epochs=40,
        init={"b1": 500.0, "b2": 1e-4}, quiet=True, plots=False, out="run",
    )  # fmt: skip
    result = fit_command(cfg, QUIET, callbacks=[InterruptAt(7)])
    assert result.fit_result.stopped == "interrupted"
    return tmp_path / "run"


def test_config_json_holds_absolute_paths_and_a_fingerprint(interrupted_fit, tmp_path):
    config = json.loads((interrupted_fit / "config.json").read_text())
    csv = tmp_path / "data" / "misra.csv"
    assert config["data"] == str(csv) and config["out"] == str(interrupted_fit)
    assert config["fingerprint"] == fingerprint(csv).record
    assert config["fingerprint"]["kind"] == "file" and len(config["fingerprint"]["sha256"]) == 64


def test_resume_from_another_directory_reads_the_same_file(interrupted_fit, monkeypatch):
    monkeypatch.chdir("/")
    result = resume_command(interrupted_fit, QUIET, quiet=True)
    assert result.fit_result.stopped in ("converged", "max_epochs")


def test_resume_refuses_changed_data_naming_the_file(interrupted_fit, tmp_path, capsys):
    csv = tmp_path / "data" / "misra.csv"
    csv.write_text(csv.read_text().replace("10.07", "10.08"))
    assert main(["resume", str(interrupted_fit)]) == 2
    err = capsys.readouterr().err
    assert f"{csv}: not the data this run was trained on" in err and "SHA-256" in err


def test_data_that_moved_is_found_with_data_and_checked(interrupted_fit, tmp_path, capsys):
    csv = tmp_path / "data" / "misra.csv"
    moved = tmp_path / "elsewhere.csv"
    csv.rename(moved)
    assert main(["resume", str(interrupted_fit)]) == 2
    err = capsys.readouterr().err
    assert f"{csv}: the data file this run was trained on is not there" in err
    assert "--data NEW_PATH" in err
    other = tmp_path / "other.csv"
    other.write_text(moved.read_text().replace("10.07", "10.08"))
    assert main(["resume", str(interrupted_fit), "--data", str(other)]) == 2
    assert f"{other}: not the data this run was trained on" in capsys.readouterr().err
    assert main(["resume", str(interrupted_fit), "--data", str(moved), "--quiet"]) == 0
    config = json.loads((interrupted_fit / "config.json").read_text())
    assert config["data"] == str(moved)  # the run now names where its data is


@pytest.fixture
def digit_folder(tmp_path):
    """label folders 3/ and 7/ of 40 PNGs each, from the bundled sample."""
    data = load_images("mnist-sample", classes=["3", "7"])
    root = tmp_path / "digits"
    for k, label in enumerate(data.labels):
        (root / label).mkdir(parents=True)
        for j, i in enumerate((data.train_y == k).nonzero().reshape(-1)[:40].tolist()):
            Image.fromarray(data.train_x[i].numpy()).save(root / label / f"{j}.png")
    return root


@pytest.mark.parametrize(
    "change, said",
    [
        (lambda root: (root / "7" / "5.png").write_bytes((root / "7" / "6.png").read_bytes()),
         "7/5.png changed"),
        (lambda root: (root / "3" / "2.png").unlink(), "3/2.png is missing"),
        (lambda root: shutil.copy(root / "3" / "2.png", root / "3" / "extra.png"),
         "3/extra.png is new"),
    ],
)  # fmt: skip
def test_resume_names_the_image_that_changed(tmp_path, digit_folder, change, said, capsys):
    out = tmp_path / "run"
    cfg = TrainConfig(source=str(digit_folder), epochs=3, batch_size=16, out=str(out), quiet=True)
    train_command(cfg, QUIET, callbacks=[InterruptAt(5)])
    manifest = json.loads((out / ".descent" / "data.json").read_text())
    assert len(manifest) == 80 and manifest[0][0] == "3/0.png"
    change(digit_folder)
    assert main(["resume", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{digit_folder}: not the image folder this run was trained on: {said}" in err


def test_the_bundled_sample_is_fingerprinted_by_its_package_file(tmp_path, capsys):
    out = tmp_path / "run"
    cfg = TrainConfig(classes=["3", "7"], epochs=2, out=str(out), quiet=True)
    train_command(cfg, QUIET, callbacks=[InterruptAt(3)])
    record = json.loads((out / "config.json").read_text())["fingerprint"]
    assert record["kind"] == "bundled" and record["source"] == "mnist-sample"
    assert main(["resume", str(out), "--data", str(tmp_path)]) == 2
    assert "the bundled data cannot move" in capsys.readouterr().err
    assert main(["resume", str(out), "--quiet"]) == 0


def test_a_5000_image_folder_is_fingerprinted_cheaply(tmp_path):
    """The bundled sample written out as PNGs: the manifest reads 5,000 small files."""
    data = load_images("mnist-sample", valid_pct=0.0)
    root = tmp_path / "sample"
    for label in data.labels:
        (root / label).mkdir(parents=True)
    for i, (x, y) in enumerate(zip(data.train_x, data.train_y.tolist(), strict=True)):
        Image.fromarray(x.numpy()).save(root / data.labels[y] / f"{i}.png")
    t0 = time.perf_counter()
    fp = fingerprint(root)
    seconds = time.perf_counter() - t0
    assert fp.record["files"] == 5000 and len(fp.manifest) == 5000
    print(f"fingerprint of 5,000 PNGs: {seconds:.2f} s")  # shown with -s; no threshold
