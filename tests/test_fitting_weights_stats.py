"""Weighted fits against curve_fit(sigma, absolute_sigma), and lmfit's statistics
(chisqr, redchi, aic, bic, covariance) computed in the test; sigma refusals."""

import math

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.optimize import curve_fit

from descent.errors import DataError
from descent.fitting.statistics import fit_statistics, t_intervals
from descent.fitting.weights import check_sigma
from fitting_problems import decay, fit_text, lmfit_fit, misra1a


def weighted_decay():
    x, y, text, start, f_np = decay()
    sigma = 0.03 + 0.04 * x / x.max()  # (n,) heteroscedastic, known
    return x, y, text, start, f_np, sigma


@pytest.mark.parametrize("absolute", [True, False])
def test_weighted_fit_matches_curve_fit(absolute):
    x, y, text, start, f_np, sigma = weighted_decay()
    fit = fit_text(x, y, text, start, sigma=sigma, absolute_sigma=absolute)
    popt, pcov = curve_fit(
        f_np, x.numpy(), y.numpy(), p0=list(start.values()), sigma=sigma.numpy(),
        absolute_sigma=absolute, xtol=1e-15, ftol=1e-15,
    )  # fmt: skip
    ours = np.array(list(fit.params.values()))
    np.testing.assert_allclose(ours, popt, rtol=1e-6)
    np.testing.assert_allclose(list(fit.stderr.values()), np.sqrt(np.diag(pcov)), rtol=1e-3)
    np.testing.assert_allclose(fit.statistics.covariance, pcov, rtol=1e-5)
    # weights matter: the unweighted fit lands elsewhere
    plain = fit_text(x, y, text, start)
    assert abs(plain.params["c"] - fit.params["c"]) > 1e-4


@pytest.mark.parametrize("absolute", [True, False])
def test_weighted_statistics_match_lmfit(absolute):
    x, y, text, start, f_np, sigma = weighted_decay()
    fit = fit_text(x, y, text, start, sigma=sigma, absolute_sigma=absolute)
    ref = lmfit_fit(f_np, x, y, start, weights=1 / sigma.numpy(), scale_covar=not absolute)
    st = fit.statistics
    for key in ("chisqr", "redchi", "aic", "bic"):
        assert getattr(st, key) == pytest.approx(getattr(ref, key), rel=1e-6), key
    assert (st.ndata, st.nvarys, st.nfree) == (ref.ndata, ref.nvarys, ref.nfree)
    np.testing.assert_allclose(st.covariance, ref.covar, rtol=1e-4)  # lmfit: numeric J
    for name in fit.free:
        assert fit.params[name] == pytest.approx(ref.params[name].value, rel=1e-6)
        assert fit.stderr[name] == pytest.approx(ref.params[name].stderr, rel=1e-4)


def test_unweighted_statistics_match_lmfit_and_nist():
    x, y, text, start, f_np = misra1a()
    fit = fit_text(x, y, text, start)
    ref = lmfit_fit(f_np, x, y, start)
    st = fit.statistics
    for key in ("chisqr", "redchi", "aic", "bic"):
        assert getattr(st, key) == pytest.approx(getattr(ref, key), rel=1e-6), key
    np.testing.assert_allclose(st.covariance, ref.covar, rtol=1e-4)  # lmfit: numeric J
    assert st.chisqr == pytest.approx(0.12455138894, rel=1e-9)  # NIST's certified RSS
    assert fit.stderr["b1"] == pytest.approx(2.7070075241, rel=1e-6)  # certified
    assert abs(st.correlation[0, 1]) < 1 and st.correlation[0, 0] == pytest.approx(1.0)


def test_t_intervals_use_the_fits_degrees_of_freedom():
    x, y, text, start, _ = misra1a()
    fit = fit_text(x, y, text, start)
    ci = t_intervals(fit.params, fit.stderr, fit.statistics.nfree)
    for name in fit.free:
        (p68, lo68, hi68), (p95, lo95, hi95) = ci[name]
        assert p68 == pytest.approx(0.6826894921, rel=1e-9) and p95 == 0.95
        k95 = stats.t.ppf(0.975, 12)  # 14 rows, 2 parameters
        assert hi95 - fit.params[name] == pytest.approx(k95 * fit.stderr[name], rel=1e-12)
        assert fit.params[name] - lo68 == pytest.approx(
            stats.t.ppf((1 + p68) / 2, 12) * fit.stderr[name], rel=1e-12
        )


def test_rank_deficient_jacobian_gives_nan_with_a_reason():
    x = torch.linspace(0, 1, 10, dtype=torch.float64)
    jt = torch.stack([x, 2 * x])  # two columns, one direction
    st = fit_statistics(x - 0.5, jt, ["a", "b"])
    assert math.isnan(st.stderr["a"]) and "rank deficient" in st.note


@pytest.mark.parametrize(
    "values, row, says",
    [
        ([1.0, 0.0, 2.0], 2, "0"),
        ([1.0, 2.0, -0.5], 3, "-0.5"),
        ([math.nan, 1.0, 1.0], 1, "missing"),
        ([1.0, math.inf, 1.0], 2, "inf"),
    ],
)
def test_bad_sigmas_are_refused_naming_the_row(values, row, says):
    with pytest.raises(DataError, match=rf"--sigma err: row {row} has an uncertainty of {says}"):
        check_sigma(torch.tensor(values), "--sigma err")


def test_sigma_count_must_match_the_rows():
    with pytest.raises(DataError, match="2 uncertainties for 3 rows"):
        check_sigma(torch.tensor([1.0, 1.0]), "sigma", n=3)
    x, y, text, start, _ = decay()
    with pytest.raises(DataError, match="row 4"):
        fit_text(x, y, text, start, sigma=torch.where(torch.arange(len(x)) == 3, 0.0, 1.0))
