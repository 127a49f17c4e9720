"""descent fit's statistics options through the CLI, against scipy and lmfit computed
in the test: --sigma (absolute and relative), an active --bounds, --fix, --ci profile,
lmfit's chisqr/redchi/aic/bic and covariance in --json, and descent predict's bands;
bad input is refused with a clear message and no run folder."""

import csv
import json

import numpy as np
import pytest
from scipy.optimize import curve_fit

from descent.cli import main
from fitting_problems import NIST, decay, lmfit_fit, misra1a

MISRA = str(NIST / "Misra1a.csv")
DECAY_NP = decay()[4]


def write_csv(path, columns: dict) -> str:
    names = list(columns)
    rows = zip(*(np.asarray(columns[n]).tolist() for n in names), strict=True)
    path.write_text(",".join(names) + "\n" + "\n".join(",".join(map(repr, r)) for r in rows) + "\n")
    return str(path)


@pytest.fixture
def decay_csv(tmp_path):
    x, y, _, _, _ = decay()
    sigma = 0.03 + 0.04 * x / x.max()
    return write_csv(tmp_path / "decay.csv", {"x": x, "y": y, "err": sigma}), x, y, sigma


def fit_json(tmp_path, *args, name="run"):
    out, js = tmp_path / name, tmp_path / f"{name}.json"
    code = main(["fit", *args, "--no-plots", "--out", str(out), "--json", str(js), "-q"])
    assert code == 0
    return json.loads(js.read_text()), out


@pytest.mark.parametrize("absolute", [False, True])
def test_weighted_fit_through_the_cli_matches_curve_fit_and_lmfit(decay_csv, tmp_path, absolute):
    path, x, y, sigma = decay_csv
    args = [path, "--model", "a*exp(-k*x)+c", "--y", "y", "--init", "a=1,k=1,c=0"]
    s, _ = fit_json(tmp_path, *args, "--sigma", "err", *(["--absolute-sigma"] * absolute))
    popt, pcov = curve_fit(
        DECAY_NP, x.numpy(), y.numpy(), p0=[1, 1, 0], sigma=sigma.numpy(),
        absolute_sigma=absolute, xtol=1e-15, ftol=1e-15,
    )  # fmt: skip
    assert [s["params"][n] for n in "akc"] == pytest.approx(popt.tolist(), rel=1e-6)
    assert [s["stderr"][n] for n in "akc"] == pytest.approx(np.sqrt(np.diag(pcov)), rel=1e-3)
    np.testing.assert_allclose(s["covariance"]["matrix"], pcov, rtol=1e-4)
    ref = lmfit_fit(DECAY_NP, x, y, {"a": 1, "k": 1, "c": 0}, 1 / sigma.numpy(), not absolute)
    for key in ("chisqr", "redchi", "aic", "bic"):
        assert s[key] == pytest.approx(getattr(ref, key), rel=1e-6), key
    assert s["weighted"] and s["absolute_sigma"] == absolute and s["nfree"] == len(x) - 3
    (p68, lo, hi), _ = ((r["probability"], r["low"], r["high"]) for r in s["intervals"]["k"])
    assert p68 == pytest.approx(0.6827, abs=1e-4) and lo < s["params"]["k"] < hi


def test_active_bound_and_fixed_parameter_through_the_cli_match_lmfit(tmp_path, capsys):
    x, y, _, start, f_np = misra1a()
    args = [MISRA, "--model", "b1*(1-exp(-b2*x))", "--y", "y", "--init", "b1=500,b2=1e-4"]
    s, _ = fit_json(tmp_path, *args, "--bounds", "b2=0:5e-4", name="bounded")
    ref = lmfit_fit(f_np, x, y, start, b2={"min": 0, "max": 5e-4})
    assert s["params"]["b1"] == pytest.approx(ref.params["b1"].value, rel=1e-6)
    assert s["params"]["b2"] == 5e-4 and s["at_bound"] == {"b2": "upper"}
    assert s["bounds"] == {"b2": [0.0, 5e-4]} and "not meaningful" in s["stderr_note"]
    assert "at upper bound" in capsys.readouterr().out

    x, y, text, start, f_np = decay()
    path = write_csv(tmp_path / "d.csv", {"x": x, "y": y})
    s, out = fit_json(tmp_path, path, "--model", text, "--y", "y", "--fix", "c=0.5", name="fixed")
    ref = lmfit_fit(f_np, x, y, {**start, "c": 0.5}, c={"vary": False})
    for name in ("a", "k"):
        assert s["params"][name] == pytest.approx(ref.params[name].value, rel=1e-6)
    assert s["fixed"] == {"c": 0.5} and s["params"]["c"] == 0.5 and s["stderr"]["c"] == 0.0
    assert s["free"] == ["a", "k"] and s["nfree"] == ref.nfree == len(x) - 2
    for key in ("chisqr", "redchi", "aic", "bic"):
        assert s[key] == pytest.approx(getattr(ref, key), rel=1e-6), key
    assert len(s["covariance"]["matrix"]) == 2
    unc = json.loads((out / "uncertainty.json").read_text())
    assert unc["free"] == ["a", "k"] and unc["fixed"] == {"c": 0.5}


def test_ci_profile_through_the_cli_matches_lmfit_conf_interval(tmp_path, capsys):
    x, y, text, start, f_np = decay()
    path = write_csv(tmp_path / "d.csv", {"x": x, "y": y})
    s, _ = fit_json(tmp_path, path, "--model", text, "--y", "y", "--ci", "profile")
    ci = lmfit_fit(f_np, x, y, start).conf_interval(sigmas=[0.95])
    for name in "akc":
        (_, lo, hi), *_ = [
            (r["probability"], r["low"], r["high"]) for r in s["profile_intervals"][name][1:]
        ]
        best = s["params"][name]
        assert lo == pytest.approx(ci[name][0][1], abs=1e-3 * (best - ci[name][0][1]))
        assert hi == pytest.approx(ci[name][2][1], abs=1e-3 * (ci[name][2][1] - best))
    assert "profile likelihood" in capsys.readouterr().out


def test_predict_writes_bands_as_lmfit_and_refuses_a_table_without_the_inputs(
    decay_csv, tmp_path, capsys
):
    path, x, y, sigma = decay_csv
    _, run = fit_json(tmp_path, path, "--model", "a*exp(-k*x)+c", "--y", "y")
    x_new = np.linspace(-0.5, 6, 9)
    new = write_csv(tmp_path / "new.csv", {"x": x_new})
    out = tmp_path / "pred.csv"
    assert (
        main(["predict", str(run), new, "--out", str(out), "--json", str(tmp_path / "p.json")]) == 0
    )
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == [
        "x",
        "y_hat",
        "se_fit",
        "conf_low",
        "conf_high",
        "pred_low",
        "pred_high",
    ]
    ref = lmfit_fit(DECAY_NP, x, y, {"a": 1, "k": 1, "c": 0})
    conf = ref.eval_uncertainty(x=x_new, sigma=0.95)
    got = np.array([[float(r[k]) for k in ("y_hat", "conf_high", "pred_high")] for r in rows])
    np.testing.assert_allclose(got[:, 0], ref.eval(x=x_new), rtol=1e-6)
    np.testing.assert_allclose(got[:, 1] - got[:, 0], conf, rtol=1e-4)
    np.testing.assert_allclose(got[:, 2] - got[:, 0], ref.dely_predicted, rtol=1e-4)
    js = json.loads((tmp_path / "p.json").read_text())
    assert js["level"] == 0.95 and js["columns"]["y_hat"] == pytest.approx(got[:, 0].tolist())

    capsys.readouterr()
    assert main(["predict", str(run), new]) == 0  # CSV to stdout
    assert capsys.readouterr().out.startswith("x,y_hat,se_fit,conf_low")
    other = write_csv(tmp_path / "other.csv", {"t": x_new})
    assert main(["predict", str(run), other]) == 2
    err = capsys.readouterr().err
    assert "no column 'x'" in err and "needs the input column(s) x" in err


def test_predict_of_a_weighted_fit_needs_the_new_rows_sigmas(decay_csv, tmp_path, capsys):
    path, x, y, sigma = decay_csv
    s, run = fit_json(tmp_path, path, "--model", "a*exp(-k*x)+c", "--y", "y", "--sigma", "err")
    bare = write_csv(tmp_path / "bare.csv", {"x": [1.0, 2.0]})
    capsys.readouterr()
    assert main(["predict", str(run), bare]) == 0
    out = capsys.readouterr()
    assert "pred_low" not in out.out and "give the new rows' sigmas (err)" in out.err
    with_err = write_csv(tmp_path / "with.csv", {"x": [1.0, 2.0], "err": [0.05, 0.1]})
    assert main(["predict", str(run), with_err]) == 0
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    from scipy import stats

    k = stats.t.ppf(0.975, len(x) - 3)
    for r, e in zip(rows, (0.05, 0.1), strict=True):
        se, half = float(r["se_fit"]), float(r["pred_high"]) - float(r["y_hat"])
        assert half == pytest.approx(k * np.sqrt(se**2 + e**2 * s["redchi"]), rel=1e-9)


def test_a_damaged_uncertainty_file_is_refused(decay_csv, tmp_path, capsys):
    path, *_ = decay_csv
    _, run = fit_json(tmp_path, path, "--model", "a*exp(-k*x)+c", "--y", "y")
    unc = json.loads((run / "uncertainty.json").read_text())
    unc["covariance"] = [[1.0, 0.0], [0.0, 1.0]]
    (run / "uncertainty.json").write_text(json.dumps(unc))
    new = write_csv(tmp_path / "new.csv", {"x": [1.0]})
    assert main(["predict", str(run), new]) == 2
    assert "'covariance' must be a 3 x 3 matrix" in capsys.readouterr().err


BAD = [
    (["--bounds", "k=2:1"], "the lower bound 2 is not below the upper bound 1"),
    (["--bounds", "k=1:1"], "is not below the upper bound"),
    (["--bounds", "k=2:3"], "the start k = 1 lies outside --bounds k=2:3"),
    (["--fix", "z=1"], "'z' is not a parameter; the parameters are a, k, c"),
    (["--sigma", "error"], "--sigma error: no such column"),
    (["--sigma", "bad"], "row 4 has an uncertainty of 0"),
    (["--sigma", "err", "--optimizer", "adam"], "--sigma needs --optimizer lm"),
    (["--bounds", "a=0:9", "--optimizer", "sgd"], "--bounds needs --optimizer lm"),
    (["--absolute-sigma"], "give --sigma too"),
    (["--by", "grp"], "--by grp: no such column"),
    (["--by", "err", "--valid-pct", "0.2"], "does not take --valid-pct"),
    (["--by", "err", "--bounds", "zz=0:9"], "'zz' is not a parameter"),
    (["--ci", "profile", "--by", "err"], "does not take --ci"),
]


@pytest.mark.parametrize("args, text", BAD)
def test_bad_statistics_options_leave_no_run_folder(tmp_path, capsys, args, text):
    x, y, _, _, _ = decay(n=12)
    bad = np.full(12, 0.05)
    bad[2] = 0.0  # data row 3 is file line 4
    path = write_csv(tmp_path / "d.csv", {"x": x, "y": y, "err": bad * 0 + 0.05, "bad": bad})
    code = main(
        ["fit", path, "--model", "a*exp(-k*x)+c", "--y", "y", "--out", str(tmp_path / "r"), *args]
    )
    err = capsys.readouterr().err
    assert code == 2 and text in err, err
    assert not (tmp_path / "r").exists()
