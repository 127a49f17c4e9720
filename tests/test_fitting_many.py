"""fit_many: every group's fit equals its own separate fit (fit_curve, with and without
sigmas) to 1e-6; unequal group sizes, rows in any order, failing groups reported."""

import math

import pytest
import torch

from descent.errors import ConfigError, DataError
from descent.fitting.curve import fit_curve
from descent.fitting.many import fit_many
from descent.models.formula import FormulaModel, parse_formula

FORMULA = parse_formula("a*exp(-k*x)+c", ["x"])
START = [1.0, 1.0, 0.0]


def many_groups(n_groups=30, seed=0):
    """Rows of n_groups decays, 6 to 40 rows each, shuffled; group 7 has 2 rows (too
    few), group 11 a row at x = -1000, where exp(k * 1000) overflows at the start."""
    g = torch.Generator().manual_seed(seed)
    xs, ys, gs = [], [], []
    for grp in range(n_groups):
        n = 2 if grp == 7 else int(torch.randint(6, 41, (1,), generator=g))
        a, k, c = 1 + 2 * torch.rand(3, generator=g, dtype=torch.float64)
        x = torch.sort(5 * torch.rand(n, generator=g, dtype=torch.float64)).values
        if grp == 11:
            x[0] = -1000.0
        y = a * torch.exp(-k * x / 2) + c - 2 + 0.02 * torch.randn(n, generator=g).double()
        xs.append(x), ys.append(y), gs.append(torch.full((n,), grp))
    order = torch.randperm(sum(len(v) for v in xs), generator=g)
    return torch.cat(xs)[order], torch.cat(ys)[order], torch.cat(gs)[order]


def test_every_group_equals_its_own_fit_curve():
    x, y, groups = many_groups()
    res = fit_many(FORMULA.as_function(), x, y, groups, START, FORMULA.params)
    assert res.stopped[7] == "failed" and res.reasons[7] == "too few rows: 2 for 3 parameters"
    assert res.stopped[11] == "failed" and "not finite at the start" in res.reasons[11]
    assert math.isnan(res.params[7, 0]) and math.isnan(res.rss[11])
    assert len(set(res.n.tolist())) > 10  # unequal sizes
    for grp in range(30):
        if grp in (7, 11):
            continue
        rows = groups == grp
        own = fit_curve(FormulaModel(FORMULA, START), x[rows], y[rows])
        assert res.stopped[grp] == "converged", grp
        for j, name in enumerate(FORMULA.params):
            assert float(res.params[grp, j]) == pytest.approx(own.params[name], rel=1e-6)
            assert float(res.stderr[grp, j]) == pytest.approx(own.stderr[name], rel=1e-6)
        assert float(res.rss[grp]) == pytest.approx(own.rss, rel=1e-9)
    table = res.rows(labels=[f"g{i}" for i in range(30)])
    assert table[0]["group"] == "g0" and set(table[0]["params"]) == {"a", "k", "c"}
    assert table[7]["stopped"] == "failed" and "reason" in table[7]


def test_weighted_groups_equal_their_own_weighted_fit_curve():
    x, y, groups = many_groups(12, seed=4)
    keep = (groups != 7) & (groups != 11)
    x, y, groups = x[keep], y[keep], groups[keep]
    sigma = 0.01 + 0.02 * torch.rand(len(y), generator=torch.Generator().manual_seed(2))
    res = fit_many(FORMULA.as_function(), x, y, groups, START, FORMULA.params, sigma=sigma)
    for grp in set(groups.tolist()):
        rows = groups == grp
        own = fit_curve(FormulaModel(FORMULA, START), x[rows], y[rows], sigma=sigma[rows])
        for j, name in enumerate(FORMULA.params):
            assert float(res.params[grp, j]) == pytest.approx(own.params[name], rel=1e-6)
            assert float(res.stderr[grp, j]) == pytest.approx(own.stderr[name], rel=1e-5)
        assert float(res.rss[grp]) == pytest.approx(own.statistics.chisqr, rel=1e-9)


def test_a_converged_group_stops_while_the_others_go_on():
    x, y, groups = many_groups(5, seed=1)
    first = fit_many(FORMULA.as_function(), x, y, groups, START, FORMULA.params)
    init = torch.tensor(START, dtype=torch.float64).repeat(5, 1)
    init[0] = first.params[0]  # group 0 starts at its optimum
    again = fit_many(FORMULA.as_function(), x, y, groups, init, FORMULA.params)
    assert int(again.steps[0]) == 1 and again.stopped[0] == "converged"
    assert torch.equal(again.params[0], first.params[0])  # not moved at all
    assert int(again.steps[1:].min()) > 3
    assert torch.allclose(again.params[1:], first.params[1:], rtol=1e-9)


def test_bad_inputs_are_refused():
    x, y, groups = many_groups(3)
    f, names = FORMULA.as_function(), FORMULA.params
    with pytest.raises(DataError, match="integer codes"):
        fit_many(f, x, y, groups.double(), START, names)
    with pytest.raises(ConfigError, match=r"init must be \(3,\) or \(3, 3\)"):
        fit_many(f, x, y, groups, [1.0, 2.0], names)
    with pytest.raises(DataError, match="row 2 has an uncertainty of -1"):
        fit_many(
            f, x, y, groups, START, names, sigma=torch.tensor([1.0, -1.0]).repeat(len(y))[: len(y)]
        )


def test_small_linear_algebra_matches_torch_linalg():
    from descent.fitting.small_linalg import inverse_diagonal, largest_eigenvalue, spd_solve

    g = torch.Generator().manual_seed(0)
    for p in (1, 2, 3, 4, 7):
        a = torch.randn(50, 9, p, generator=g, dtype=torch.float64)
        spd = a.mT @ a  # (50, p, p)
        rhs = torch.randn(50, p, generator=g, dtype=torch.float64)
        last = spd.permute(1, 2, 0)  # (p, p, 50): the batch last, as fit_many keeps it
        x, ok, _ = spd_solve(last, rhs.T)
        assert bool(ok.all())
        assert torch.allclose(x.T, torch.linalg.solve(spd, rhs), rtol=1e-9, atol=1e-12)
        top = torch.linalg.eigvalsh(spd)[:, -1]
        assert torch.allclose(largest_eigenvalue(last), top, rtol=1e-12)
        diag, ok = inverse_diagonal(last)
        want = torch.diagonal(torch.linalg.inv(spd), dim1=-2, dim2=-1)
        assert bool(ok.all()) and torch.allclose(diag.T, want, rtol=1e-9)
    singular = torch.zeros(2, 2, 1, dtype=torch.float64)
    assert not bool(spd_solve(singular, torch.ones(2, 1, dtype=torch.float64))[1][0])


def test_a_rank_deficient_group_gets_nan_errors_and_the_others_are_unaffected():
    x = torch.cat([torch.full((8,), 2.0), torch.linspace(0, 4, 10)]).double()  # group 0: one x
    y = torch.cat([torch.linspace(1, 1.1, 8).double(), 2 * torch.exp(-x[8:]) + 0.1])
    groups = torch.cat([torch.zeros(8), torch.ones(10)]).long()
    res = fit_many(FORMULA.as_function(), x, y, groups, START, FORMULA.params)
    assert torch.isnan(res.stderr[0]).all() and float(res.rss[0]) == pytest.approx(0.0085714, 1e-4)
    assert torch.allclose(res.params[1], torch.tensor([2.0, 1.0, 0.1]).double(), rtol=1e-9)


BOUNDS = {"a": (0.0, 2.0), "k": (0.5, 0.9), "c": (-1.5, math.inf)}
BOUNDED_START = [1.0, 0.7, 0.0]


def test_bounded_groups_equal_their_own_bounded_fit_curve():
    """Each group's bounded fit is fit_curve(..., bounds=) of that group alone, to
    1e-10 (parameters near 0 to 1e-10 absolute), with the same parameters at a bound."""
    x, y, groups = many_groups(30, seed=1)
    keep = (groups != 7) & (groups != 11)
    x, y, groups = x[keep], y[keep], groups[keep]
    res = fit_many(FORMULA, x, y, groups, BOUNDED_START, FORMULA.params, bounds=BOUNDS)
    marked = res.at_bound()
    assert sum(bool(m) for m in marked) >= 10  # the bounds are active in many groups
    for grp in sorted(set(groups.tolist())):
        rows = groups == grp
        own = fit_curve(FormulaModel(FORMULA, BOUNDED_START), x[rows], y[rows], bounds=BOUNDS)
        assert res.stopped[grp] == "converged"
        assert marked[grp] == own.at_bound, grp
        for j, name in enumerate(FORMULA.params):
            v = float(res.params[grp, j])
            lo, hi = BOUNDS[name]
            assert lo <= v <= hi
            assert v == pytest.approx(own.params[name], rel=1e-10, abs=1e-10), (grp, name)
            assert float(res.stderr[grp, j]) == pytest.approx(own.stderr[name], rel=1e-6)
        assert float(res.rss[grp]) == pytest.approx(own.rss, rel=1e-10)
    rows = res.rows()
    assert rows[1]["at_bound"] == marked[1]


def test_a_start_outside_the_bounds_is_refused():
    x, y, groups = many_groups(4)
    with pytest.raises(ConfigError, match="start k = 1 lies outside --bounds k=0.5:0.9"):
        fit_many(FORMULA, x, y, groups, START, FORMULA.params, bounds=BOUNDS)


def test_on_step_sees_the_fit_and_a_cancel_ends_it_with_current_values():
    from descent.core.events import CancelFit

    x, y, groups = many_groups(20, seed=3)
    seen = []

    def watch(progress):
        seen.append((progress.step, progress.params().clone(), progress.stopped()))

    full = fit_many(FORMULA, x, y, groups, START, FORMULA.params, on_step=watch)
    plain = fit_many(FORMULA, x, y, groups, START, FORMULA.params)
    assert torch.equal(
        full.params.nan_to_num(), plain.params.nan_to_num()
    )  # the hook changes nothing
    assert [s for s, _, _ in seen] == list(range(1, len(seen) + 1)) and len(seen) > 3
    assert torch.equal(seen[0][1][0], torch.tensor(START, dtype=torch.float64))  # the start
    assert seen[0][2][7] == "failed" and "running" in seen[0][2]

    def stop_at_3(progress):
        if progress.step == 3:
            raise CancelFit("interrupted", "stopped from the page after step 3")

    cut = fit_many(FORMULA, x, y, groups, START, FORMULA.params, on_step=stop_at_3)
    assert cut.message == "stopped from the page after step 3"
    assert "interrupted" in cut.stopped and cut.stopped[7] == "failed"
    for g, how in enumerate(cut.stopped):
        if how == "interrupted":  # the values of the third step, no standard errors
            assert torch.equal(cut.params[g], seen[2][1][g])
            assert torch.isnan(cut.stderr[g]).all()
        elif how == "converged":  # finished before the stop: as in the full fit
            assert torch.equal(cut.params[g], full.params[g])
