"""Small problems shared by the tests of descent.fitting: data and formulas, with the
same model written for numpy (scipy's curve_fit, lmfit)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from descent.data.tables import read_table
from descent.fitting.curve import CurveFit, fit_curve
from descent.models.formula import FormulaModel, parse_formula

NIST = Path(__file__).resolve().parents[2] / "shared" / "nist"
if not NIST.is_dir():  # a clone elsewhere: the same problems ship in bench/nist
    NIST = Path(__file__).resolve().parents[1] / "bench" / "nist"


def misra1a():
    """NIST Misra1a, y = b1 (1 - exp(-b2 x)), 14 rows; start 1 of NIST."""
    pr = json.loads((NIST / "problems.json").read_text())["Misra1a"]
    x, y = read_table(NIST / pr["csv"], columns=["x", "y"]).select(["x"], "y")
    return x, y, "b1*(1-exp(-b2*x))", pr["start1"], lambda x, b1, b2: b1 * (1 - np.exp(-b2 * x))


def decay(n: int = 40, seed: int = 3):
    """y = a exp(-k x) + c + noise 0.05, a = 3, k = 0.8, c = 0.4."""
    g = torch.Generator().manual_seed(seed)
    x = torch.linspace(0, 5, n, dtype=torch.float64)
    y = 3 * torch.exp(-0.8 * x) + 0.4 + 0.05 * torch.randn(n, generator=g, dtype=torch.float64)
    return (
        x,
        y,
        "a*exp(-k*x)+c",
        {"a": 1.0, "k": 1.0, "c": 0.0},
        (lambda x, a, k, c: a * np.exp(-k * x) + c),
    )


def gaussian_peak(n: int = 60, seed: int = 5):
    """A Gaussian peak on a flat background, noise 0.1."""
    g = torch.Generator().manual_seed(seed)
    x = torch.linspace(-5, 5, n, dtype=torch.float64)
    clean = 2.5 * torch.exp(-((x - 0.7) ** 2) / (2 * 1.3**2)) + 0.3
    y = clean + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)
    start = {"amp": 1.0, "cen": 0.0, "wid": 1.0, "bg": 0.0}
    return (
        x,
        y,
        "amp*exp(-(x-cen)**2/(2*wid**2))+bg",
        start,
        (lambda x, amp, cen, wid, bg: amp * np.exp(-((x - cen) ** 2) / (2 * wid**2)) + bg),
    )


def fit_text(x, y, text, start, **kws) -> CurveFit:
    """descent's fit_curve of `text` (input x) from `start`; kws: sigma, bounds, fixed..."""
    return fit_curve(FormulaModel(parse_formula(text, ["x"]), start), x, y, **kws)


def lmfit_fit(f_np, x, y, start, weights=None, scale_covar=True, **param_kws):
    """lmfit.Model(f_np).fit with tight tolerances (the oracle at its best); param_kws:
    {name: dict(min=..., max=..., vary=..., value=...)}."""
    import lmfit

    model = lmfit.Model(f_np)
    params = model.make_params(**start)
    for name, kws in param_kws.items():
        params[name].set(**kws)
    return model.fit(
        y.numpy(),
        params,
        x=x.numpy(),
        weights=weights,
        scale_covar=scale_covar,
        fit_kws={"xtol": 1e-15, "ftol": 1e-15},
    )
