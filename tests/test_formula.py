"""Formula parser: numbers against numpy, gradients against gradcheck, and hostile input."""

from __future__ import annotations

import ast
import builtins
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from descent.errors import ConfigError, FormulaError
from descent.models.formula import Formula, FormulaModel, parse_formula

NIST = Path("/work/shared/nist")
F64 = torch.float64

# (formula, the same function written in numpy by hand, parameter values)
CASES = [
    ("a*x + b", lambda x, a, b: a * x + b, [2.0, -1.0]),
    ("a*x**2 + b*x + c", lambda x, a, b, c: a * x**2 + b * x + c, [0.5, -2.0, 3.0]),
    ("b1*(1-exp(-b2*x))", lambda x, b1, b2: b1 * (1 - np.exp(-b2 * x)), [2.0, 0.7]),
    ("a*log(x) + b*log10(x) - c*log2(x)",
     lambda x, a, b, c: a * np.log(x) + b * np.log10(x) - c * np.log2(x), [1.0, 2.0, 3.0]),
    ("a*sqrt(x)/(1 + b*x)", lambda x, a, b: a * np.sqrt(x) / (1 + b * x), [1.5, 0.3]),
    ("a*sin(b*x + c) + d*cos(x) - tan(x/5)*e1",
     lambda x, a, b, c, d, e1: a * np.sin(b * x + c) + d * np.cos(x) - np.tan(x / 5) * e1,
     [1.0, 2.0, 0.1, -0.5, 0.2]),
    ("a*arctan(x) + b*asin(x/10) + c*acos(x/10)",
     lambda x, a, b, c: a * np.arctan(x) + b * np.arcsin(x / 10) + c * np.arccos(x / 10),
     [1.0, 2.0, 3.0]),
    ("a*tanh(b*x) + sinh(x/4)*c - cosh(x/4)",
     lambda x, a, b, c: a * np.tanh(b * x) + np.sinh(x / 4) * c - np.cosh(x / 4), [1.0, 0.5, 2.0]),
    ("abs(a - x)**1.5 + b", lambda x, a, b: np.abs(a - x) ** 1.5 + b, [2.0, 1.0]),
    ("a*exp(-(x-m)**2/(2*s**2))/(s*sqrt(2*pi))",
     lambda x, a, m, s: a * np.exp(-((x - m) ** 2) / (2 * s**2)) / (s * np.sqrt(2 * np.pi)),
     [3.0, 2.0, 0.8]),
    ("-a*x**-2 + +b*e**x", lambda x, a, b: -a * x**-2.0 + b * np.e**x, [1.0, 0.1]),
    ("k*atan2(x, 2) + arctan2(1, x)", lambda x, k: k * np.arctan2(x, 2) + np.arctan2(1, x), [0.5]),
    ("a*x**b", lambda x, a, b: a * x**b, [1.2, 0.7]),
    ("1.5e-3*a*x/3 - 2**10*b", lambda x, a, b: 1.5e-3 * a * x / 3 - 2**10 * b, [4.0, 0.01]),
]  # fmt: skip


@pytest.mark.parametrize(("text", "np_fn", "values"), CASES, ids=[c[0] for c in CASES])
def test_matches_numpy(text, np_fn, values):
    f = parse_formula(text)
    x = np.linspace(0.5, 9.5, 37)
    got = f(torch.tensor(x, dtype=F64), torch.tensor(values, dtype=F64))
    assert got.shape == (37,) and got.dtype == F64
    np.testing.assert_allclose(got.numpy(), np_fn(x, *values), rtol=1e-13, atol=1e-13)


# The NIST formulas, written in numpy by hand.
NIST_NUMPY = {
    "Misra1a": lambda x, b1, b2: b1 * (1 - np.exp(-b2 * x)),
    "Misra1b": lambda x, b1, b2: b1 * (1 - (1 + b2 * x / 2) ** (-2)),
    "Chwirut1": lambda x, b1, b2, b3: np.exp(-b1 * x) / (b2 + b3 * x),
    "Chwirut2": lambda x, b1, b2, b3: np.exp(-b1 * x) / (b2 + b3 * x),
    "DanWood": lambda x, b1, b2: b1 * x**b2,
    "Gauss1": lambda x, b1, b2, b3, b4, b5, b6, b7, b8: (
        b1 * np.exp(-b2 * x)
        + b3 * np.exp(-((x - b4) ** 2) / b5**2)
        + b6 * np.exp(-((x - b7) ** 2) / b8**2)
    ),
    "Lanczos3": lambda x, b1, b2, b3, b4, b5, b6: (
        b1 * np.exp(-b2 * x) + b3 * np.exp(-b4 * x) + b5 * np.exp(-b6 * x)
    ),
}
NIST_NUMPY["Gauss2"] = NIST_NUMPY["Gauss1"]
PROBLEMS = json.loads((NIST / "problems.json").read_text()) if NIST.exists() else {}


@pytest.mark.skipif(not PROBLEMS, reason="NIST problems not available")
@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_nist_certified_values(name):
    prob = PROBLEMS[name]
    f = parse_formula(prob["formula"])
    assert f.params == sorted(prob["certified"], key=lambda k: int(k[1:]))  # b1, b2, ...
    assert f.inputs == prob["x"]
    data = np.loadtxt(NIST / prob["csv"], delimiter=",", skiprows=1)
    header = (NIST / prob["csv"]).read_text().splitlines()[0].split(",")
    x, y = data[:, header.index(prob["x"][0])], data[:, header.index(prob["y"])]
    values = [prob["certified"][p] for p in f.params]
    got = f(torch.tensor(x, dtype=F64), torch.tensor(values, dtype=F64)).numpy()
    np.testing.assert_allclose(got, NIST_NUMPY[name](x, *values), rtol=1e-12)
    rss = float(((y - got) ** 2).sum())
    assert rss == pytest.approx(prob["certified_rss"], rel=1e-6)


@pytest.mark.parametrize("text", [c[0] for c in CASES] + ["a*t**3 + b/(t+c)"])
def test_gradients_match_gradcheck(text):
    f = parse_formula(text)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(11, generator=gen, dtype=F64) * 3 + 1.0  # (11,) in [1, 4]
    p = (torch.rand(len(f.params), generator=gen, dtype=F64) + 0.5).requires_grad_()
    assert torch.autograd.gradcheck(lambda p: f(x, p), (p,))


def test_parameters_and_inputs_in_order_of_first_appearance():
    f = parse_formula("c + b*x + a*x**2 + b")
    assert (f.params, f.inputs) == (["c", "b", "a"], ["x"])
    assert parse_formula("a*t**2 + v0*t").inputs == ["t"]
    # x wins over t when both appear; t is then a parameter
    assert parse_formula("t*x").params == ["t"]
    # pi and e are constants, not parameters
    assert parse_formula("a*sin(2*pi*x) + e").params == ["a"]
    # a listed input shadows the constant e
    assert parse_formula("a*e", inputs=["e"]).inputs == ["e"]
    assert str(parse_formula("  a*x ")) == "a*x"
    assert isinstance(parse_formula("a*x"), Formula)


def test_multiple_inputs_follow_formula_order():
    f = parse_formula("a*h + b*t**2 + c", inputs=["t", "h", "unused"])
    assert f.inputs == ["h", "t"] and f.params == ["a", "b", "c"]
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=F64)  # (n, 2): columns h, t
    out = f(x, torch.tensor([10.0, 1.0, 0.5], dtype=F64))
    assert out.tolist() == [10 + 4 + 0.5, 30 + 16 + 0.5]


def test_formula_without_inputs_broadcasts_and_shape_is_checked():
    f = parse_formula("a + b", inputs=["x"])
    assert f.inputs == [] and f(torch.zeros(3), torch.tensor([1.0, 2.0])).tolist() == [3.0] * 3
    f = parse_formula("a*x")
    assert f(torch.ones(4, 1, dtype=F64), torch.tensor([2.0], dtype=F64)).tolist() == [2.0] * 4
    with pytest.raises(Exception, match="shape"):
        f(torch.ones(4, 2), torch.tensor([2.0]))


def test_dtype_follows_inputs_and_integer_power():
    f = parse_formula("a*x**3")
    x = torch.tensor([-2.0, 3.0], dtype=torch.float32)
    out = f(x, torch.tensor([1.0]))
    assert out.dtype == torch.float32 and out.tolist() == [-8.0, 27.0]  # (-2)**3, not nan


def test_formula_model():
    m = FormulaModel("b1*(1-exp(-b2*x))", init={"b2": 0.5, "b1": 2.0})
    assert m.values() == {"b1": 2.0, "b2": 0.5} and m.params.dtype == F64
    assert "b1*(1-exp(-b2*x))" in repr(m) and m.formula.params == ["b1", "b2"]
    m(torch.linspace(0, 1, 5, dtype=F64)).sum().backward()
    assert m.params.grad.shape == (2,)
    assert FormulaModel("a*t + b").values() == {"a": 1.0, "b": 1.0}  # init=None -> 1.0
    assert FormulaModel("a*t + b", [3, 4]).values() == {"a": 3.0, "b": 4.0}
    with pytest.raises(ConfigError, match=r"\['b'\]"):
        FormulaModel("a*x + b", init={"a": 1.0})
    with pytest.raises(ConfigError, match=r"\['zz'\].*\['a', 'b'\]"):
        FormulaModel("a*x + b", init={"a": 1.0, "b": 2.0, "zz": 3.0})
    with pytest.raises(ConfigError, match="3 initial values"):
        FormulaModel("a*x + b", init=[1, 2, 3])
    with pytest.raises(ConfigError, match="not finite"):
        FormulaModel("a*x + b", init=[1, float("nan")])


# (hostile formula, part of the message that must name what is wrong)
HOSTILE = [
    ("__import__('os').system('echo pwned')", "calling `__import__('os').system`"),
    ("().__class__", "attribute access"),
    ("x.__dict__", "x.__dict__"),
    ("open('f')", "`open` is not a known function"),
    ("9**9**9**9", "exponent"),
    ("(lambda: 1)()", "call functions by name"),
    ("lambda: 1", "lambda"),
    ("[i for i in x]", "comprehension"),
    ("x[0]", "indexing"),
    ("'a'", "a string `'a'`"),
    ("b'a' + x", "bytes"),
    ("exp(x, y)", "`exp` takes 1 argument(s), got 2"),
    ("a if x else b", "if/else"),
    ("x == 1", "comparison"),
    ("a*x and b", "and/or"),
    ("eval('1')", "`eval` is not a known function"),
    ("exec('1')", "`exec` is not a known function"),
    ("globals()", "`globals` is not a known function"),
    ("getattr(x, 'y')", "`getattr` is not a known function"),
    ('f"{x}"', "f-string"),
    ("(a:=1)", "assignment (:=)"),
    ("a*x + 1j", "complex"),
    ("exp(x=1)", "keyword argument"),
    ("exp(*x)", "unpacking"),
    ("exp*2 + a*x", "`exp` is a function"),
    ("a*x + True", "True"),
    ("a*x + None", "None"),
    ("a*x // 2", "operator //"),
    ("a*x % 2", "operator %"),
    ("~x*a", "operator ~"),
    ("pi(x)*a", "`pi` is a constant"),
    ("a*x + 1e999", "not finite"),
    ("a*x + 10**1000", "constant part"),
    ("a*x**(10**4)", "exponent"),
    ("a*x + " + "9" * 400, "not finite"),
    ("x.y(1)", "call functions by name"),
    ("a*x + __b", "`__b`"),
    ("a*x +", "cannot parse"),
    ("import os", "cannot parse"),
    ("sin(x) + 2*x", "no parameters"),
    ("a + b", "--x"),
    ("", "empty"),
    ("(" * 2000 + "x" + ")" * 2000, "characters long"),
    ("(" * 300 + "a*x" + ")" * 300, "cannot parse"),
    ("-" * 60 + "a*x", "nested more than 50"),
    ("+".join(f"a{i}*x" for i in range(300)), "at most 500"),
    ("+".join(f"a{i}*x" for i in range(60)), "each term of a long sum"),
    ("x" * 100_000, "100,000 characters"),
    ("a*x\x00", "null bytes"),
]


@pytest.mark.parametrize(("text", "message"), HOSTILE, ids=[h[0][:30] for h in HOSTILE])
def test_hostile_formulas_are_rejected(text, message, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("eval/exec must never be called")

    monkeypatch.setattr(builtins, "eval", refuse)
    monkeypatch.setattr(builtins, "exec", refuse)
    with pytest.raises(FormulaError) as info:
        parse_formula(text)
    assert message in str(info.value)


def test_caret_points_at_the_offending_part():
    with pytest.raises(FormulaError) as info:
        parse_formula("a*x + x.__class__")
    lines = str(info.value).splitlines()
    assert lines[1] == "  a*x + x.__class__" and lines[2] == "        ^"
    assert "allowed:" in lines[3] and "exp" in lines[3]
    with pytest.raises(FormulaError) as info:
        parse_formula("a*x % 2")
    assert str(info.value).splitlines()[2] == "      ^"  # under the %
    with pytest.raises(FormulaError, match="did you mean exp"):
        parse_formula("a*ex(x)")


def test_nothing_is_executed(tmp_path):
    sentinel = tmp_path / "pwned"
    for text in [
        f"open({str(sentinel)!r}, 'w')",
        f"__import__('pathlib').Path({str(sentinel)!r}).touch()",
        f"a*x + (lambda: open({str(sentinel)!r}, 'w'))()",
        f"[open({str(sentinel)!r}, 'w') for i in x]",
    ]:
        with pytest.raises(FormulaError):
            parse_formula(text)
    assert not sentinel.exists()


def test_parser_recursion_and_memory_errors_are_reported(monkeypatch):
    def explode(*args, **kwargs):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(ast, "parse", explode)
    with pytest.raises(FormulaError, match="RecursionError"):
        parse_formula("a*x")
