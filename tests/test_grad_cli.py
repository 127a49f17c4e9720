"""`descent grad` through the CLI: the book's examples, the MSE against a CSV (the loop's
step 4), the tangent plot, the JSON, and refusals (exit 2, one clear message)."""

from __future__ import annotations

import json

import pytest
import torch

from descent.cli import main
from descent.cli.grad import parse_point
from descent.data.synthetic import roller_coaster
from descent.errors import ConfigError


def run(capsys, *argv):
    code = main(["grad", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_books_scalar_example(capsys, tmp_path):
    code, out, _ = run(capsys, "x**2", "--at", "x=3", "--json", str(tmp_path / "g.json"))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "x**2 at x = 3"
    assert lines[1].split() == ["value", "9"]
    assert lines[2].split()[:2] == ["d/dx", "6"] and "central difference 6" in lines[2]
    g = json.loads((tmp_path / "g.json").read_text())
    assert g["value"] == 9 and g["grad"] == {"x": 6} and g["central_difference"]["x"] == 6


def test_the_books_rank_1_example(capsys):
    code, out, _ = run(capsys, "x**2", "--at", "x=3,4,10", "--sum")
    assert code == 0 and "(x**2).sum() at x = [3, 4, 10]" in out
    assert "value        125" in out
    assert "d/dx         [6, 8, 20]" in out and "central difference [6, 8, 20]" in out


def test_the_mse_against_a_csv_is_the_loops_step_4(capsys, tmp_path):
    t, speed = roller_coaster(42, dtype=torch.float64)
    path = tmp_path / "coaster.csv"
    rows = "".join(f"{a!r},{b!r}\n" for a, b in zip(t.tolist(), speed.tolist(), strict=True))
    path.write_text("time,speed\n" + rows)
    code, out, _ = run(
        capsys, "a*time**2+b*time+c", "--at", "a=1,b=2,c=3", "--data", str(path),
        "--y", "speed", "--json", str(tmp_path / "g.json"),
    )  # fmt: skip
    assert code == 0 and "mse(a*time**2+b*time+c, speed) over 20 rows" in out
    params = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
    a, b, c = params
    loss = ((a * t**2 + b * t + c - speed) ** 2).mean()  # the book's mse
    loss.backward()
    g = json.loads((tmp_path / "g.json").read_text())
    assert g["value"] == pytest.approx(float(loss.detach()), rel=1e-12)
    got = torch.tensor([g["grad"][k] for k in "abc"], dtype=torch.float64)
    torch.testing.assert_close(got, params.grad)
    assert g["relative_error"] < 1e-8


def test_plot_draws_the_tangent(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "x**3", "--at", "x=2", "--plot")
    assert code == 0 and "plot: grad.png" in out
    assert (tmp_path / "grad.png").read_bytes()[:4] == b"\x89PNG"
    code, _, _ = run(capsys, "a*x**2+b", "--at", "a=1,x=2", "--at", "b=3", "--plot", "t.png",
                     "--var", "x")  # fmt: skip
    assert code == 0 and (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"


def test_parse_point():
    assert parse_point(["x=3"]) == {"x": 3.0}
    assert parse_point(["x=3,4,10"]) == {"x": [3.0, 4.0, 10.0]}
    assert parse_point(["a=1, b=-2", "c=1e-3,2"]) == {"a": 1.0, "b": -2.0, "c": [0.001, 2.0]}
    for bad, text in [
        (["3"], "write name=value"),
        (["x=a"], "'a' is not a number"),
        (["x=1", "x=2"], "x is given twice"),
        (["1x=2"], "not a variable name"),
    ]:
        with pytest.raises(ConfigError, match=text):
            parse_point(bad)


HOSTILE = [
    "__import__('os').system('touch PWNED')",
    "().__class__",
    "x.__dict__",
    "open('PWNED', 'w')",
    "9**9**9**9",
    "(lambda: 1)()",
    "eval('1')",
    "x if x else x",
    "(" * 1000 + "x" + ")" * 1000,
    "x*" * 20_000 + "x",
]


@pytest.mark.parametrize("formula", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_formulas_end_in_a_clear_error(capsys, tmp_path, monkeypatch, formula):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, formula, "--at", "x=1")
    assert code == 2 and err.startswith("descent grad: error:") and "Traceback" not in err
    assert len(err) < 2000  # the message points at the part, it does not echo the formula
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize(
    "argv, text",
    [
        (["x**2"], "give the point with --at"),
        (["x**2+y", "--at", "x=3"], "no value for y"),
        (["x**2", "--at", "x=3,4", "--data", "f.csv", "--sum"], "--sum is for rank-1 values"),
        (["x**2", "--at", "x=3", "--y", "speed"], "--y names the target column of --data"),
        (["x**2", "--at", "x=3", "--plot", "--var", "z"], "--var z: not a variable"),
        (["x*y", "--at", "x=1,2,3", "--at", "y=1,2"], "do not broadcast"),
        (["log(x)", "--at", "x=-1"], "not finite"),
        (["a*t", "--at", "a=1", "--data", "missing.csv"], "missing.csv"),
    ],
)
def test_bad_input_says_what_is_wrong(capsys, tmp_path, monkeypatch, argv, text):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *argv)
    assert code == 2 and text in err and "Traceback" not in err, err
    assert not (tmp_path / "grad.png").exists()
