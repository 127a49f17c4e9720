"""Profile-likelihood intervals against lmfit's conf_interval, and confidence and
prediction bands against lmfit's eval_uncertainty, both computed in the test."""

import math

import numpy as np
import pytest
import torch

from descent.errors import ConfigError
from descent.fitting.bands import bands
from descent.fitting.distributions import ONE_SIGMA, TWO_SIGMA
from descent.fitting.profile import profile_intervals
from fitting_problems import decay, fit_text, gaussian_peak, lmfit_fit, misra1a


@pytest.mark.parametrize("case", [misra1a, decay, gaussian_peak], ids=lambda c: c.__name__)
def test_profile_intervals_match_lmfit_conf_interval(case):
    x, y, text, start, f_np = case()
    fit = fit_text(x, y, text, start)
    ours = profile_intervals(fit, levels=(ONE_SIGMA, TWO_SIGMA))
    ref = lmfit_fit(f_np, x, y, start)
    ci = ref.conf_interval(sigmas=[1, 2])  # [(p2, lo2), (p1, lo1), (0, best), (p1, hi1), (p2, hi2)]
    for name, got in ours.items():
        best = fit.params[name]
        theirs = [(ci[name][1][1], ci[name][3][1]), (ci[name][0][1], ci[name][4][1])]
        for (_, lo, hi), (t_lo, t_hi) in zip(got.intervals, theirs, strict=True):
            # to 1e-3 of the interval's half-width (lmfit's own root stops at 5e-5 relative)
            assert lo == pytest.approx(t_lo, abs=1e-3 * (best - t_lo)), name
            assert hi == pytest.approx(t_hi, abs=1e-3 * (t_hi - best)), name


def test_profile_intervals_are_asymmetric_where_the_model_is_curved():
    x, y, text, start, _ = misra1a()
    fit = fit_text(x, y, text, start)
    (_, lo, hi), _ = profile_intervals(fit, ["b1"])["b1"].intervals
    below, above = fit.params["b1"] - lo, hi - fit.params["b1"]
    assert 1.01 < above / below < 1.05  # 2.79 below, 2.87 above: the t interval is +-2.85


def test_profile_with_a_fixed_parameter_and_an_open_end_at_a_bound():
    x, y, text, start, _ = decay()
    fit = fit_text(x, y, text, {**start, "c": 0.5}, bounds={"c": (0.38, 1)}, fixed={"a": 3})
    got = profile_intervals(fit, ["c"], levels=(0.95,))["c"].intervals[0]
    assert got[1] == -math.inf  # the profile stays below the 95 % level down to c = 0.38
    assert fit.params["c"] < got[2] < 1
    with pytest.raises(ConfigError, match="a not fitted"):
        profile_intervals(fit, ["a"])


@pytest.mark.parametrize("weighted", [False, True])
def test_bands_match_lmfit_eval_uncertainty(weighted):
    x, y, text, start, f_np = decay()
    sigma = 0.03 + 0.04 * x / x.max() if weighted else None
    fit = fit_text(x, y, text, start, sigma=sigma)
    ref = lmfit_fit(f_np, x, y, start, weights=None if sigma is None else 1 / sigma.numpy())
    x_new = torch.linspace(-0.5, 6, 13, dtype=torch.float64)  # past the data too
    for level in (1, 2):
        dely = ref.eval_uncertainty(x=x_new.numpy(), sigma=level)
        got = bands(fit, x_new, level)
        assert got.probability == pytest.approx(ONE_SIGMA if level == 1 else TWO_SIGMA)
        # lmfit differentiates numerically (steps of 1% of a standard error)
        np.testing.assert_allclose(got.confidence.numpy(), dely, rtol=1e-4)
        np.testing.assert_allclose(got.y_hat.numpy(), ref.eval(x=x_new.numpy()), rtol=1e-6)
        if not weighted:
            np.testing.assert_allclose(got.prediction.numpy(), ref.dely_predicted, rtol=1e-4)
            continue
        # weighted: lmfit adds redchi (in units of sigma^2) to a variance in units of y^2;
        # descent asks for the new rows' sigmas and adds sigma^2 * redchi (curve_fit's
        # relative sigmas), and without them gives no prediction band, saying why
        assert got.prediction is None and "sigmas" in got.note
        s_new = torch.full_like(x_new, 0.05)
        with_s = bands(fit, x_new, level, sigma=s_new)
        k = dely / got.stderr.numpy()
        want = k * np.sqrt(got.stderr.numpy() ** 2 + 0.05**2 * fit.statistics.redchi)
        np.testing.assert_allclose(with_s.prediction.numpy(), want, rtol=1e-4)


def test_bands_of_a_straight_line_are_the_textbook_formulas():
    """y = m x + q: the delta method is exact, se(f) = s sqrt(1/n + (x0 - xbar)^2 / Sxx)."""
    g = torch.Generator().manual_seed(1)
    x = torch.linspace(0, 10, 25, dtype=torch.float64)
    y = 0.7 * x + 2 + 0.3 * torch.randn(25, generator=g, dtype=torch.float64)
    fit = fit_text(x, y, "m*x+q", {"m": 1.0, "q": 0.0})
    x0 = torch.tensor([-2.0, 5.0, 13.0], dtype=torch.float64)
    s2, n = fit.statistics.redchi, len(x)
    sxx = float(((x - x.mean()) ** 2).sum())
    var = s2 * (1 / n + (x0 - x.mean()) ** 2 / sxx)
    from scipy import stats

    k = stats.t.ppf(0.975, n - 2)
    got = bands(fit, x0, 0.95)
    np.testing.assert_allclose(got.confidence.numpy(), k * var.sqrt().numpy(), rtol=1e-9)
    np.testing.assert_allclose(got.prediction.numpy(), k * (var + s2).sqrt().numpy(), rtol=1e-9)
    with_sigma = bands(fit, x0, 0.95, sigma=torch.full((3,), 2.0))
    assert with_sigma.prediction[1] > got.prediction[1]  # sigma 2, relative: 4 * redchi
