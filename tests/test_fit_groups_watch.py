"""descent fit --by with --bounds (each group against its own bounded fit_curve, the
at_bound marks), --watch (the page's group events through fit_many's on_step, the
page's Stop), Ctrl-C (exit 130, groups.csv with current values, the reason in
summary.json), report.html of a --by run, and the options --by still refuses."""

import csv
import io
import json
import math
import os
import signal

import numpy as np
import pytest
import torch

from descent.cli import main
from descent.commands import fit_groups
from descent.commands.config import FitConfig
from descent.commands.fit_groups import fit_groups_command
from descent.fitting.curve import fit_curve
from descent.models.formula import FormulaModel, parse_formula
from descent.report.rundata import run_events
from descent.watch.session import WatchSession

FORMULA = parse_formula("a*exp(-k*x)+c", ["x"])
BOUNDS = {"a": (0.0, 2.2), "k": (0.4, 1.0)}
ARGS = ["--model", "a*exp(-k*x)+c", "--y", "y", "--by", "sensor", "--init", "a=1,k=0.5,c=0"]


@pytest.fixture
def sensors(tmp_path):
    """12 decays of 15 rows, rows grouped by sensor; several end on a bound."""
    rng = np.random.default_rng(0)
    lines, truth = ["sensor,x,y"], {}
    for g in range(12):
        a, k, c = 1 + 2 * rng.random(), 0.3 + rng.random(), rng.random() - 0.5
        x = np.sort(5 * rng.random(15))
        y = a * np.exp(-k * x) + c + 0.02 * rng.standard_normal(15)
        truth[f"s{g}"] = (x, y)
        lines += [f"s{g},{float(xi)!r},{float(yi)!r}" for xi, yi in zip(x, y, strict=True)]
    path = tmp_path / "sensors.csv"
    path.write_text("\n".join(lines) + "\n")
    return path, truth


def test_by_with_bounds_equals_each_groups_bounded_fit_curve(sensors, tmp_path):
    path, truth = sensors
    out, js = tmp_path / "run", tmp_path / "s.json"
    code = main(["fit", str(path), *ARGS, "--bounds", "a=0:2.2,k=0.4:1", "--out", str(out),
                 "--json", str(js), "-q"])  # fmt: skip
    assert code == 0
    summary = json.loads(js.read_text())
    assert summary["bounds"] == {"a": [0.0, 2.2], "k": [0.4, 1.0]}
    groups = {g["group"]: g for g in summary["groups"]}
    table = {r["group"]: r for r in csv.DictReader((out / "groups.csv").open())}
    marked = 0
    for name, (x, y) in truth.items():
        own = fit_curve(
            FormulaModel(FORMULA, [1.0, 0.5, 0.0]), torch.tensor(x), torch.tensor(y), bounds=BOUNDS
        )
        g = groups[name]
        for p in "akc":
            assert g["params"][p] == pytest.approx(own.params[p], rel=1e-10, abs=1e-10), (name, p)
        assert g["at_bound"] == own.at_bound
        expected = " ".join(f"{n}={side}" for n, side in own.at_bound.items())
        assert table[name]["at_bound"] == expected
        marked += bool(own.at_bound)
    assert marked >= 3  # the bounds are active


def test_a_start_outside_the_bounds_is_refused_before_the_run_folder(sensors, tmp_path, capsys):
    path, _ = sensors
    out = tmp_path / "run"
    assert main(["fit", str(path), *ARGS, "--bounds", "k=0.6:1", "--out", str(out)]) == 2
    assert "the start k = 0.5 lies outside --bounds k=0.6:1" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("option", "named"),
    [
        (["--ci", "profile"], "--ci"),
        (["--optimizer", "adam"], "--optimizer"),
        (["--valid-pct", "0.2"], "--valid-pct"),
        (["--tensorboard", "tb"], "--tensorboard"),
    ],
)
def test_options_by_cannot_honour_are_refused_by_name(sensors, tmp_path, capsys, option, named):
    path, _ = sensors
    out = tmp_path / "run"
    assert main(["fit", str(path), *ARGS, *option, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert named in err and "--by" in err and "Traceback" not in err
    assert not out.exists()


def _config(path, out, **kw):
    start = {"a": 1.0, "k": 0.5, "c": 0.0}
    return FitConfig(data=str(path), model="a*exp(-k*x)+c", y="y", by="sensor", init=start,
                     out=str(out), quiet=True, **kw)  # fmt: skip


def test_watch_sends_the_groups_and_their_curves_and_ends(sensors, tmp_path):
    path, _ = sensors
    with WatchSession(port=0, out=io.StringIO()) as watch:
        res = fit_groups_command(_config(path, tmp_path / "run", bounds=["a=0:2.2"]), watch=watch)
        events = watch.log.events()
    kinds = [e["type"] for e in events]
    assert kinds[0] == "run" and events[0]["task"] == "groups" and kinds[-1] == "end"
    data = next(e for e in events if e["type"] == "group_data")
    assert len(data["samples"]) == 6 and len(data["samples"][0]["x"]) == 15
    last = [e for e in events if e["type"] == "groups"][-1]  # the final picture
    assert last["n_groups"] == 12 and last["counts"] == {"converged": 12}
    assert last["rows"][0]["params"]["a"] == res.fits.params[0, 0].item()
    assert any(r.get("at_bound") == {"a": "upper"} for r in last["rows"])
    curve = last["samples"][0]
    assert len(curve["x"]) == 100  # the fitted curve of the first sampled group
    assert curve["y"][0] == pytest.approx(float(FORMULA(torch.tensor([curve["x"][0]]),
                                                        res.fits.params[0])[0]))  # fmt: skip
    assert any(e["type"] == "batch" for e in events)
    assert res.interrupted_by is None and events[-1]["stopped"] == "finished"


def test_stop_from_the_page_writes_current_values_and_the_reason(sensors, tmp_path):
    path, _ = sensors
    out = tmp_path / "run"
    with WatchSession(port=0, out=io.StringIO()) as watch:
        watch.stop("stopped from the page")  # before the first step: every group stops there
        res = fit_groups_command(_config(path, out), watch=watch)
    assert res.interrupted_by == "page"
    rows = list(csv.DictReader((out / "groups.csv").open()))
    assert len(rows) == 12 and {r["stopped"] for r in rows} == {"interrupted"}
    assert float(rows[0]["a"]) == 1.0 and rows[0]["a_stderr"] == ""  # the start, no errors
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True
    assert summary["message"].startswith("stopped from the page at step 1: 12 groups interrupted")


def test_ctrl_c_ends_a_by_fit_with_130_and_the_groups_so_far(sensors, tmp_path, monkeypatch):
    path, _ = sensors
    original = fit_groups.fit_many

    def fit_many(*args, on_step, **kw):  # Ctrl-C arrives during the third step
        def step(progress):
            if progress.step == 3:
                os.kill(os.getpid(), signal.SIGINT)
            on_step(progress)

        return original(*args, on_step=step, **kw)

    monkeypatch.setattr(fit_groups, "fit_many", fit_many)
    out = tmp_path / "run"
    assert main(["fit", str(path), *ARGS, "--out", str(out), "-q", "--no-plots"]) == 130
    rows = list(csv.DictReader((out / "groups.csv").open()))
    assert len(rows) == 12 and "interrupted" in {r["stopped"] for r in rows}
    for r in rows:
        assert r["stopped"] in ("interrupted", "converged")
        assert math.isfinite(float(r["a"]))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["message"].startswith("interrupted by SIGINT at step 3")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handed back


def test_report_of_a_by_run_shows_its_groups(sensors, tmp_path):
    path, _ = sensors
    out = tmp_path / "run"
    assert main(["fit", str(path), *ARGS, "--bounds", "a=0:2.2", "--out", str(out), "-q"]) == 0
    page = (out / "report.html").read_text()
    assert '"task":"groups"' in page and "data:image/png;base64," in page
    events = run_events(out)
    groups = next(e for e in events if e["type"] == "groups")
    summary = json.loads((out / "summary.json").read_text())
    assert [r["group"] for r in groups["rows"]] == [g["group"] for g in summary["groups"]]
    assert groups["rows"][0]["params"] == summary["groups"][0]["params"]
    assert events[-1]["type"] == "end" and events[-1]["stopped"] == "finished"
    (out / "summary.json").unlink()  # a run still going: the table from groups.csv
    again = next(e for e in run_events(out) if e["type"] == "groups")
    assert again["rows"][0]["params"] == summary["groups"][0]["params"]
