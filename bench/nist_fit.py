"""Curve fitting: descent (Levenberg-Marquardt in its loop) against
scipy.optimize.curve_fit on NIST's 27 StRD nonlinear-regression problems from
both starting points, and on a 1,000,000-point synthetic problem.

Digits of accuracy: LRE = min over parameters of -log10(|b - b_cert| / |b_cert|)
(15 when exact); a fit passes at LRE >= 4 with standard errors within 0.5%.
Times are medians of repeated fits in this run; ratios are descent / curve_fit.

    python bench/nist_fit.py            # all 27 problems
    python bench/nist_fit.py --quick    # the 8 in ../shared/nist only
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import statistics
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import curve_fit

sys.path.insert(0, str(Path(__file__).parent))
from common import machine_info, median_time, table, verdict
from descent.data.tables import read_table
from descent.fitting.curve import fit_curve
from descent.models.formula import FormulaModel, parse_formula

HERE = Path(__file__).parent / "nist"
NP = {"exp": np.exp, "log": np.log, "sqrt": np.sqrt, "sin": np.sin, "cos": np.cos,
      "tan": np.tan, "arctan": np.arctan, "pi": np.pi}  # fmt: skip
OPS = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide,
       ast.Pow: np.power}  # fmt: skip


def numpy_function(text: str, inputs: list[str], params: list[str]):
    """The formula as a numpy function f(X, *b) for curve_fit (the bench's own small
    AST walker over the same whitelist; scipy gets native numpy, not torch)."""
    tree = ast.parse(text, mode="eval").body

    def ev(node, env):
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            return env[node.id] if node.id in env else NP[node.id]
        if isinstance(node, ast.UnaryOp):
            return -ev(node.operand, env)
        if isinstance(node, ast.BinOp):
            return OPS[type(node.op)](ev(node.left, env), ev(node.right, env))
        if isinstance(node, ast.Call):
            return NP[node.func.id](*(ev(a, env) for a in node.args))
        raise ValueError(ast.dump(node))

    def f(x, *b):
        cols = [x] if len(inputs) == 1 else list(x)
        return ev(
            tree, {**dict(zip(inputs, cols, strict=True)), **dict(zip(params, b, strict=True))}
        )

    return f


def lre(values, certified) -> float:
    out = []
    for v, c in zip(values, certified, strict=True):
        out.append(
            15.0 if v == c else -math.log10(abs(v - c) / abs(c)) if math.isfinite(v) else 0.0
        )
    return min(out)


def se_ok(values, certified) -> bool:
    return all(
        math.isfinite(v) and abs(v - c) / c < 5e-3 for v, c in zip(values, certified, strict=True)
    )


def run_problem(name: str, pr: dict, repeats: int) -> list[list]:
    formula = parse_formula(pr["formula"], pr["x"])
    table_ = read_table(HERE / pr["csv"], columns=[*pr["x"], pr["y"]])
    x, y = table_.select(pr["x"], pr["y"])
    # by name: a formula's parameters come in order of appearance (MGH17: b1 b2 b4 b3 b5)
    cert = [pr["certified"][k] for k in formula.params]
    cert_se = [pr["certified_stderr"][k] for k in formula.params]
    f_np = numpy_function(pr["formula"], formula.inputs, formula.params)
    x_np = x.numpy() if x.dim() == 1 else x.numpy().T
    rows = []
    for start in ("start1", "start2"):
        p0 = [pr[start][k] for k in formula.params]

        def ours(p0=p0):
            return fit_curve(FormulaModel(formula, p0), x, y)

        def scipy_fit(p0=p0):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    return curve_fit(f_np, x_np, y.numpy(), p0=p0, maxfev=20000)
                except (RuntimeError, ValueError):
                    return None

        r = ours()
        d_lre = lre(list(r.params.values()), cert)
        d_ok = d_lre >= 4 and se_ok(list(r.stderr.values()), cert_se)
        s = scipy_fit()
        if s is None:
            s_lre, s_ok = 0.0, False
        else:
            popt, pcov = s
            s_lre = lre(list(popt), cert)
            s_ok = s_lre >= 4 and se_ok(list(np.sqrt(np.abs(np.diag(pcov)))), cert_se)
        n_rep = 1 if r.fit_result.steps > 1000 else repeats
        t_ours = median_time(ours, n_rep, warmup=0)
        t_scipy = median_time(scipy_fit, n_rep, warmup=0)
        rows.append([name, start[-1], d_lre, "yes" if d_ok else "NO", r.fit_result.steps,
                     1e3 * t_ours, s_lre, "yes" if s_ok else "NO", 1e3 * t_scipy,
                     t_ours / t_scipy])  # fmt: skip
    return rows


def million_points() -> list:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1_000_000, generator=g, dtype=torch.float64) * 1000
    y = 240 * (1 - torch.exp(-5.5e-4 * x)) + 0.3 * torch.randn(
        1_000_000, generator=g, dtype=torch.float64
    )
    formula = parse_formula("b1*(1-exp(-b2*x))", ["x"])
    f_np = numpy_function(formula.text, ["x"], formula.params)

    def ours():
        return fit_curve(FormulaModel(formula, [500.0, 1e-4]), x, y)

    def scipy_fit():
        return curve_fit(f_np, x.numpy(), y.numpy(), p0=[500.0, 1e-4])

    r, (popt, _) = ours(), scipy_fit()
    t_ours, t_scipy = median_time(ours, 3), median_time(scipy_fit, 3)
    agree = max(abs(a - b) / abs(b) for a, b in zip(r.params.values(), popt, strict=True))
    return ["1,000,000 points", 1e3 * t_ours, 1e3 * t_scipy, t_ours / t_scipy, agree]


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="only the 8 problems of ../shared/nist")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    problems = json.loads((HERE / "problems.json").read_text())
    if args.quick:
        problems = {k: v for k, v in problems.items() if v["difficulty"] == "Lower"}
    fit_curve(FormulaModel("a*x", [1.0]), torch.arange(3.0).double(), torch.arange(3.0).double())
    rows = [row for name, pr in problems.items() for row in run_problem(name, pr, args.repeats)]
    headers = ["problem", "start", "descent LRE", "pass", "steps", "descent ms",
               "curve_fit LRE", "pass", "curve_fit ms", "time ratio"]  # fmt: skip
    ratios = [r[-1] for r in rows]
    ours_ms = statistics.median(r[5] for r in rows)
    scipy_ms = statistics.median(r[8] for r in rows)
    lines = [
        "## Curve fitting: descent vs scipy.optimize.curve_fit on NIST StRD",
        "",
        machine_info(),
        "",
    ]
    lines.append(table(headers, rows))
    lines += [
        "",
        f"descent passes {sum(r[3] == 'yes' for r in rows)}/{len(rows)}, curve_fit "
        f"{sum(r[7] == 'yes' for r in rows)}/{len(rows)}; median time per fit: descent "
        f"{ours_ms:.2f} ms, curve_fit {scipy_ms:.2f} ms (ratio of medians "
        f"{ours_ms / scipy_ms:.2f}x; median of per-fit ratios {statistics.median(ratios):.2f}x)",
        "",
    ]
    big = million_points()
    lines.append(
        table(["problem", "descent ms", "curve_fit ms", "time ratio", "max rel. param diff"], [big])
    )
    passed = sum(r[3] == "yes" for r in rows)
    lines += [
        "",
        f"{'PASS' if passed == len(rows) else 'FAIL'} NIST: descent reaches 4 digits and "
        f"stderr to 2 digits in {passed}/{len(rows)} fits (target: all)",
        verdict("NIST: median time per fit, descent / curve_fit", ours_ms / scipy_ms, 5.0, False),
        verdict("1,000,000 points: descent time / curve_fit's", big[3], 1.0, False),
    ]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
