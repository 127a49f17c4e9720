"""Bounds (an active one: the optimum lies outside the box) and fixed parameters
against lmfit computed in the test; the option parsers' refusals."""

import math

import pytest

from descent.errors import ConfigError
from descent.fitting.bounds import AT_BOUND_NOTE, parse_bounds
from descent.fitting.fixed import parse_fixed
from fitting_problems import decay, fit_text, lmfit_fit, misra1a


def test_active_upper_bound_matches_lmfit():
    x, y, text, start, f_np = misra1a()  # unconstrained b2 = 5.5016e-4: outside the box
    fit = fit_text(x, y, text, start, bounds={"b2": (0.0, 5e-4)})
    ref = lmfit_fit(f_np, x, y, start, b2={"min": 0.0, "max": 5e-4})
    for name in ("b1", "b2"):
        assert fit.params[name] == pytest.approx(ref.params[name].value, rel=1e-6), name
    assert fit.params["b2"] == 5e-4  # exactly on the bound
    assert fit.at_bound == {"b2": "upper"}
    assert fit.statistics.chisqr == pytest.approx(ref.chisqr, rel=1e-6)
    assert fit.statistics.chisqr > 0.12455138894 * 4  # the certified, unconstrained RSS
    assert fit.fit_result.stopped == "converged"
    assert "not meaningful" in AT_BOUND_NOTE.format(side="upper")


def test_active_lower_bound_one_sided_matches_lmfit():
    x, y, text, start, f_np = decay()  # c is about 0.4: a floor of 0.5 binds
    start = {**start, "c": 0.6}
    fit = fit_text(x, y, text, start, bounds={"c": (0.5, math.inf), "k": (0, 10)})
    ref = lmfit_fit(f_np, x, y, start, c={"min": 0.5}, k={"min": 0, "max": 10})
    for name in fit.params:
        assert fit.params[name] == pytest.approx(ref.params[name].value, rel=1e-6), name
    assert fit.at_bound == {"c": "lower"} and fit.params["c"] == 0.5


def test_an_inactive_bound_changes_nothing():
    x, y, text, start, _ = decay()
    free = fit_text(x, y, text, start)
    boxed = fit_text(x, y, text, start, bounds={"a": (0, 10), "k": (-math.inf, 5)})
    for name in free.params:
        assert boxed.params[name] == pytest.approx(free.params[name], rel=1e-9)
    assert boxed.at_bound == {}


def test_a_start_outside_the_bounds_is_refused():
    x, y, text, start, _ = misra1a()
    with pytest.raises(ConfigError, match=r"the start b2 = 0.0001 lies outside --bounds b2=0.0002"):
        fit_text(x, y, text, start, bounds={"b2": (2e-4, 1e-3)})


def test_parse_bounds_accepts_lists_commas_and_infinities():
    names = ["a", "k", "c"]
    got = parse_bounds(["a=0:inf,k=0.5:2", "c=-inf:"], names)
    assert got == {"a": (0.0, math.inf), "k": (0.5, 2.0), "c": (-math.inf, math.inf)}


@pytest.mark.parametrize(
    "spec, says",
    [
        ("a=2:1", "is not below the upper bound"),
        ("a=1:1", "is not below the upper bound"),
        ("z=0:1", "'z' is not a parameter; the parameters are a, k"),
        ("a=0", "write NAME=LO:HI"),
        ("a=x:1", "'x' is not a number"),
        ("a=nan:1", "cannot be nan"),
        ("a=0:1,a=0:2", "bounded twice"),
    ],
)
def test_parse_bounds_refusals_name_the_item(spec, says):
    with pytest.raises(ConfigError, match=says):
        parse_bounds(spec, ["a", "k"])


def test_fixed_parameter_matches_lmfit_vary_false():
    x, y, text, start, f_np = decay()
    fit = fit_text(x, y, text, start, fixed={"c": 0.5})
    ref = lmfit_fit(f_np, x, y, {**start, "c": 0.5}, c={"vary": False})
    assert fit.params["c"] == 0.5 and fit.stderr["c"] == 0.0 and fit.free == ["a", "k"]
    for name in ("a", "k"):
        assert fit.params[name] == pytest.approx(ref.params[name].value, rel=1e-6)
        assert fit.stderr[name] == pytest.approx(ref.params[name].stderr, rel=1e-4)
    st = fit.statistics
    assert (st.nvarys, st.nfree) == (ref.nvarys, ref.nfree) == (2, len(x) - 2)
    for key in ("chisqr", "redchi", "aic", "bic"):
        assert getattr(st, key) == pytest.approx(getattr(ref, key), rel=1e-6), key


def test_fixed_and_bounded_together():
    x, y, text, start, f_np = decay()
    start = {**start, "c": 0.7}
    fit = fit_text(x, y, text, start, fixed={"a": 2.5}, bounds={"c": (0.5, 1.0)})
    ref = lmfit_fit(f_np, x, y, {**start, "a": 2.5}, a={"vary": False}, c={"min": 0.5, "max": 1})
    for name in fit.params:
        assert fit.params[name] == pytest.approx(ref.params[name].value, rel=1e-6)


@pytest.mark.parametrize(
    "spec, says",
    [
        ("z=1", "'z' is not a parameter"),
        ("a", "write NAME=VALUE"),
        ("a=b", "'b' is not a number"),
        ("a=inf", "must be finite"),
        ("a=1,k=2", "holds every parameter"),
    ],
)
def test_parse_fixed_refusals(spec, says):
    with pytest.raises(ConfigError, match=says):
        parse_fixed(spec, ["a", "k"])
    assert parse_fixed(["a=1.5"], ["a", "k"]) == {"a": 1.5}
