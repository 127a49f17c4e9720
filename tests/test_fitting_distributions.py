"""Student's t without scipy: quantiles, tails and the incomplete beta function
against scipy.special / scipy.stats."""

import math

import pytest
from scipy import special, stats

from descent.fitting.distributions import (
    ONE_SIGMA,
    TWO_SIGMA,
    betainc,
    sigma_probability,
    t_cdf,
    t_interval_factor,
    t_ppf,
)

PROBS = [1e-10, 1e-6, 1e-3, 0.025, 0.1, 0.158655, 0.3, 0.5, 0.7, 0.841, 0.975, 0.999, 1 - 1e-9]


@pytest.mark.parametrize("nu", [1, 2, 3, 4, 5, 7, 10, 12, 33, 99, 100, 101, 1000, 10**4, 10**6])
def test_t_ppf_matches_scipy(nu):
    tol = 1e-12 if nu < 10**5 else 1e-10
    for q in PROBS:
        assert t_ppf(q, nu) == pytest.approx(stats.t.ppf(q, nu), rel=tol, abs=1e-300), (nu, q)


@pytest.mark.parametrize("nu", [1, 3, 14, 250])
def test_t_cdf_matches_scipy_and_inverts_ppf(nu):
    for x in [-40.0, -3.0, -0.5, 0.0, 0.2, 1.0, 6.0]:
        assert t_cdf(x, nu) == pytest.approx(stats.t.cdf(x, nu), rel=1e-12, abs=1e-300)
    for q in [0.01, 0.3, 0.8]:
        assert t_cdf(t_ppf(q, nu), nu) == pytest.approx(q, rel=1e-12)


def test_betainc_matches_scipy():
    for a in [0.5, 1, 3, 10.5, 99, 150, 1000, 5e5]:
        for b in [0.5, 2, 7.5, 1e4]:
            for x in [1e-5, 0.1, 0.5, 0.9, 0.999999]:
                assert betainc(a, b, x) == pytest.approx(special.betainc(a, b, x), abs=1e-13)


def test_f_test_with_one_parameter_is_t_squared():
    """lmfit's f_compare with nfix = 1 is what profile.py solves via t_ppf."""
    for nu in [3, 12, 58]:
        for prob in [ONE_SIGMA, 0.95, TWO_SIGMA]:
            f = t_interval_factor(prob, nu) ** 2
            assert stats.f.cdf(f, 1, nu) == pytest.approx(prob, rel=1e-12)


def test_levels_follow_lmfit():
    assert sigma_probability(1) == pytest.approx(0.6826894921370859, rel=1e-15)
    assert sigma_probability(2) == TWO_SIGMA == pytest.approx(math.erf(2 / math.sqrt(2)))
    assert sigma_probability(0.95) == 0.95
    assert t_ppf(0.0, 5) == -math.inf and t_ppf(1.0, 5) == math.inf
    with pytest.raises(ValueError):
        t_ppf(1.5, 3)
