"""descent fit --by COL: every group of rows fitted at once, unequal group sizes and a
failing group, against each group's own curve_fit computed in the test; groups.csv,
--json, the plot; fixed parameters in fit_many; bad --by input."""

import csv
import json
import math

import numpy as np
import pytest
import torch
from scipy.optimize import curve_fit

from descent.cli import main
from descent.fitting.curve import fit_curve
from descent.fitting.many import fit_many
from descent.fitting.memory import retain_freed_memory
from descent.models.formula import FormulaModel, parse_formula

FORMULA = parse_formula("a*exp(-k*x)+c", ["x"])


def decay_np(x, a, k, c):
    return a * np.exp(-k * x) + c


@pytest.fixture
def grouped_csv(tmp_path):
    """Sensors named by text, 5 to 26 rows each, rows interleaved; "roof" has 2 rows."""
    rng = np.random.default_rng(4)
    rows = []
    truth = {}
    for i, name in enumerate(["north", "south", "east", "west", "roof", "cellar", "attic"]):
        n = 2 if name == "roof" else 5 + 3 * i
        a, k, c = 1 + 2 * rng.random(), 0.5 + rng.random(), rng.random() - 0.5
        x = np.sort(4 * rng.random(n))
        y = a * np.exp(-k * x) + c + 0.02 * rng.standard_normal(n)
        truth[name] = (x, y)
        rows += [(name, float(xi), float(yi)) for xi, yi in zip(x, y, strict=True)]
    order = rng.permutation(len(rows))
    path = tmp_path / "sensors.csv"
    text = "sensor,x,y\n" + "".join(f"{rows[i][0]},{rows[i][1]!r},{rows[i][2]!r}\n" for i in order)
    path.write_text(text)
    return path, truth


def test_by_fits_every_group_as_its_own_curve_fit(grouped_csv, tmp_path, capsys):
    path, truth = grouped_csv
    out, js = tmp_path / "run", tmp_path / "s.json"
    args = ["fit", str(path), "--model", "a*exp(-k*x)+c", "--y", "y", "--by", "sensor"]
    assert main([*args, "--init", "a=1,k=1,c=0", "--out", str(out), "--json", str(js)]) == 0
    printed = capsys.readouterr().out
    assert "Groups (7: 6 converged, 1 failed)" in printed
    assert "too few rows: 2 for 3 parameters" in printed
    s = json.loads(js.read_text())
    assert s["n_groups"] == 7 and s["by"] == "sensor" and "formula" in s
    groups = {g["group"]: g for g in s["groups"]}
    assert set(groups) == set(truth)
    for name, (x, y) in truth.items():
        g = groups[name]
        assert set(g) >= {"group", "params", "stderr", "rss", "stopped"} and g["n"] == len(x)
        if name == "roof":
            assert g["stopped"] == "failed" and g["params"]["a"] is None
            continue
        popt, pcov = curve_fit(decay_np, x, y, p0=[1, 1, 0], xtol=1e-15, ftol=1e-15)
        assert g["stopped"] == "converged"
        assert [g["params"][n] for n in "akc"] == pytest.approx(popt.tolist(), rel=1e-6)
        assert [g["stderr"][n] for n in "akc"] == pytest.approx(np.sqrt(np.diag(pcov)), rel=1e-3)
    table = list(csv.DictReader((out / "groups.csv").open()))
    assert [r["group"] for r in table][:2] == list(groups)[:2]
    assert list(table[0]) == ["group", "a", "k", "c", "a_stderr", "k_stderr", "c_stderr", "rss",
                              "n", "stopped", "reason", "at_bound"]  # fmt: skip
    roof = next(r for r in table if r["group"] == "roof")
    assert roof["stopped"] == "failed" and roof["a"] == "" and "too few rows" in roof["reason"]
    assert (out / "plots" / "groups.png").read_bytes()[:4] == b"\x89PNG"
    assert not (out / "model.json").exists()  # one fit per group, no single model
    new = tmp_path / "new.csv"
    new.write_text("x\n1\n")
    assert main(["predict", str(out), str(new)]) == 2
    assert "a --by run holds one fit per group" in capsys.readouterr().err


def test_by_with_a_fixed_parameter_and_weights(grouped_csv, tmp_path):
    path, truth = grouped_csv
    text = path.read_text().splitlines()
    path.write_text("\n".join([text[0] + ",err"] + [line + ",0.03" for line in text[1:]]) + "\n")
    js = tmp_path / "s.json"
    args = ["fit", str(path), "--model", "a*exp(-k*x)+c", "--y", "y", "--by", "sensor"]
    code = main([*args, "--fix", "c=0", "--sigma", "err", "--out", str(tmp_path / "r"),
                 "--json", str(js), "--no-plots", "-q"])  # fmt: skip
    assert code == 0
    groups = {g["group"]: g for g in json.loads(js.read_text())["groups"]}
    x, y = truth["west"]
    popt, pcov = curve_fit(lambda x, a, k: decay_np(x, a, k, 0.0), x, y, p0=[1, 1],
                           sigma=np.full(len(x), 0.03), xtol=1e-15, ftol=1e-15)  # fmt: skip
    g = groups["west"]
    assert [g["params"]["a"], g["params"]["k"]] == pytest.approx(popt.tolist(), rel=1e-6)
    assert g["stderr"]["k"] == pytest.approx(math.sqrt(pcov[1, 1]), rel=1e-3)
    assert g["params"]["c"] == 0.0 and g["stderr"]["c"] == 0.0
    assert groups["roof"]["stopped"] != "failed"  # 2 rows, 2 free parameters: exact


def test_a_row_without_a_group_is_named(tmp_path, capsys):
    path = tmp_path / "g.csv"
    path.write_text("g,x,y\na,0,1\na,1,2\n,2,3\nb,0,1\n")
    code = main(["fit", str(path), "--model", "p*x+q", "--y", "y", "--by", "g",
                 "--out", str(tmp_path / "r")])  # fmt: skip
    assert code == 2 and "row 4 has no value in the --by column 'g'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_fit_many_with_a_fixed_parameter_equals_fit_curve_and_both_evaluations_agree():
    g = torch.Generator().manual_seed(3)
    x = torch.linspace(0, 4, 15, dtype=torch.float64).repeat(6)
    groups = torch.arange(6).repeat_interleave(15)
    y = 2 * torch.exp(-0.7 * x) + 0.3 + 0.02 * torch.randn(90, generator=g, dtype=torch.float64)
    fast = fit_many(FORMULA, x, y, groups, [1.0, 1.0, 0.3], FORMULA.params, fixed={"c": 0.3})
    flat = fit_many(FORMULA.as_function(), x, y, groups, [1.0, 1.0, 0.3], FORMULA.params,
                    fixed={"c": 0.3})  # fmt: skip
    assert torch.allclose(fast.params, flat.params, rtol=1e-12)
    assert torch.equal(fast.stderr[:, 2], torch.zeros(6)) and fast.fixed == {"c": 0.3}
    for grp in range(6):
        rows = groups == grp
        own = fit_curve(FormulaModel(FORMULA, [1.0, 1.0, 0.3]), x[rows], y[rows], fixed="c=0.3")
        for j, name in enumerate(FORMULA.params):
            assert float(fast.params[grp, j]) == pytest.approx(own.params[name], rel=1e-6)
            assert float(fast.stderr[grp, j]) == pytest.approx(own.stderr[name], rel=1e-6, abs=0)
    assert isinstance(retain_freed_memory(), bool)


def test_gradient_descent_supports_fixed_parameters():
    x = torch.linspace(0, 4, 30, dtype=torch.float64)
    y = 2 * torch.exp(-0.7 * x) + 0.3
    lm = fit_curve(FormulaModel(FORMULA, [1.0, 1.0, 0.3]), x, y, fixed={"c": 0.3})
    gd = fit_curve(FormulaModel(FORMULA, [1.0, 1.0, 0.3]), x, y, fixed={"c": 0.3},
                   optimizer="lbfgs", epochs=500)  # fmt: skip
    assert gd.params == pytest.approx(lm.params, rel=1e-5) and gd.free == ["a", "k"]
