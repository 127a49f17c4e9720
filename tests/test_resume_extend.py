"""`descent resume RUN --epochs N / --steps N`: a finished or stopped run goes on, and
at a constant rate the result equals one run of the total length (the oracle)."""

import json

import pytest
import torch
from rich.console import Console
from safetensors.torch import load_file
from tests.test_watch import pixel_learner

from descent.callbacks.checkpointer import Checkpointer
from descent.callbacks.stopping import EarlyStopping
from descent.commands.config import FitConfig, TrainConfig
from descent.commands.fit import fit_command
from descent.commands.resume import extend, resume_command
from descent.commands.train import train_command
from descent.errors import ConfigError
from descent.io.checkpoints import ResumeFrom, latest_checkpoint, list_checkpoints, load_checkpoint
from descent.report.rundata import read_metrics

QUIET = Console(quiet=True)
TRAIN = dict(
    source="mnist-sample", classes=["3", "7"], optimizer="sgd", lr=0.5, momentum=0.9,
    batch_size=128, quiet=True,
)  # fmt: skip


def rows(path):
    return [{k: v for k, v in r.items() if k != "time"} for r in read_metrics(path)]


def same_tensors(a, b):
    ta, tb = load_file(a), load_file(b)
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def test_a_finished_train_run_extended_equals_one_run_of_the_total_length(tmp_path):
    whole = train_command(TrainConfig(**TRAIN, epochs=5, out=str(tmp_path / "whole")), QUIET)
    train_command(TrainConfig(**TRAIN, epochs=2, out=str(tmp_path / "part")), QUIET)
    more = resume_command(tmp_path / "part", QUIET, quiet=True, epochs=5)
    assert more.fit_result.stopped == whole.fit_result.stopped == "max_epochs"
    assert rows(tmp_path / "part" / "metrics.csv") == rows(tmp_path / "whole" / "metrics.csv")
    assert len(rows(tmp_path / "part" / "metrics.csv")) == 5  # the history continues
    assert same_tensors(tmp_path / "part/model.safetensors", tmp_path / "whole/model.safetensors")
    config = json.loads((tmp_path / "part" / "config.json").read_text())
    assert config["epochs"] == 5  # a plain `descent resume` now goes to the new end


def test_extending_goes_on_from_the_trained_parameters_not_the_restored_best(tmp_path):
    """Early stopping restores its best epoch when the fit ends; the last checkpoint then
    holds those parameters, but the extension goes on from where training was."""

    def rule():  # "best" = the highest train_loss (epoch 2 of 3): restoring changes the model
        return EarlyStopping(monitor="train_loss", mode="max", patience=100)

    whole = pixel_learner(callbacks=[rule()])
    whole.fit(6)
    first = pixel_learner(callbacks=[rule(), Checkpointer(tmp_path)])
    first.fit(3)
    state, _ = load_checkpoint(list_checkpoints(tmp_path)[-1])
    assert state["stopped"] == "max_epochs" and first.best_epoch == 2
    again = pixel_learner(callbacks=[rule()])
    again.load_state_dict({**state, "stopped": None})
    again.fit(6)
    assert again.history == whole.history
    assert torch.equal(again.model.weights, whole.model.weights)  # both restored epoch 2


def test_a_fit_extended_with_steps_equals_one_fit_of_that_many(tmp_path, roller):
    t, speed = roller
    csv = tmp_path / "roller.csv"
    csv.write_text(
        "t,speed\n" + "".join(f"{a},{b}\n" for a, b in zip(t.tolist(), speed.tolist(), strict=True))
    )
    fit = dict(data=str(csv), model="a*t**2 + b*t + c", y="speed", optimizer="sgd", lr=0.1,
               quiet=True, plots=False)  # fmt: skip
    whole = fit_command(FitConfig(**fit, epochs=60, out=str(tmp_path / "whole")), QUIET)
    fit_command(FitConfig(**fit, epochs=20, out=str(tmp_path / "part")), QUIET)
    more = resume_command(tmp_path / "part", QUIET, quiet=True, steps=60)
    assert more.fit_result.steps == 60 and more.params == whole.params
    assert rows(tmp_path / "part" / "metrics.csv") == rows(tmp_path / "whole" / "metrics.csv")


def test_what_cannot_be_extended_is_refused_with_the_reason(tmp_path):
    small = dict(TRAIN, epochs=2)
    train_command(TrainConfig(**small, out=str(tmp_path / "a")), QUIET)
    with pytest.raises(ConfigError, match="has already run 2 epochs"):
        resume_command(tmp_path / "a", QUIET, quiet=True, epochs=2)
    train_command(TrainConfig(**small, schedule="one-cycle", out=str(tmp_path / "b")), QUIET)
    with pytest.raises(ConfigError, match="one-cycle, which is defined over the run's original"):
        resume_command(tmp_path / "b", QUIET, quiet=True, epochs=4)
    # a stop rule ended it: the rule would end it again at once
    run_id = json.loads((tmp_path / "a" / "config.json").read_text())["run_id"]
    found = latest_checkpoint(tmp_path / "a", run_id)
    stopped = ResumeFrom({**found.state, "stopped": "early_stopping"}, found.path)
    with pytest.raises(ConfigError, match="ended by early_stopping"):
        extend(TrainConfig(**small, out=str(tmp_path / "a")), stopped, epochs=4)
