"""[4 gradient] The gradient of a function at a point, by autograd, with a finite-difference
check beside it: the book's `xt = tensor(3.).requires_grad_(); f(xt).backward(); xt.grad`.

    grad("x**2", x=3)                         # value 9, d/dx 6
    grad("x**2", x=[3, 4, 10], sum=True)      # (x**2).sum(): 125, d/dx [6, 8, 20]
    grad("a*t**2 + b*t + c", data="coaster.csv", a=1, b=2, c=3)
        # the MSE of the formula against the file's other column, and its gradient in
        # a, b, c: the quantity the training loop's step 4 computes

`f` is a formula (the same AST whitelist as `descent fit`: nothing is evaluated) or a
Python function called with the variables as keyword arguments. Everything is float64.

Rules:
- Without data every name in the formula is a variable and needs a value. A value is a
  number or a list of numbers (the book's rank-1 tensor) of at most MAX_VALUES (1,000);
  lists must broadcast together. With data, a formula's variables are single numbers.
- A vector result is differentiated as its sum (the book's `.sum()`); for an elementwise
  function (every formula is one) that gives each element its own derivative.
  `sum=True` also reports the sum as the value.
- With `data` (a CSV path, or a mapping column -> values) the formula's names that are
  columns are inputs, the rest variables; the target y is the column named by `target`,
  or else the one column the formula does not use. The value is mean((f - y)**2) over
  the rows.
- The check is a central difference, (F(v + h) - F(v - h)) / (2h) for each element of
  each variable with the others held, at h = eps**(1/3) * max(1, |v|) (eps = 2.2e-16):
  the step that balances truncation error (~h²) against rounding (~eps/h) in float64.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from descent.errors import ConfigError, DataError
from descent.models.formula import parse_formula

EPS = torch.finfo(torch.float64).eps
# The most values one variable may have: the central-difference check evaluates the whole
# function twice per value, so m values cost ~m^2 work (1,000 take well under a second).
MAX_VALUES = 1_000
Number = float | list[float]


@dataclass(frozen=True)
class Gradient:
    """What `grad` returns: the value, autograd's gradient and the finite-difference check.

    Scalars are floats, rank-1 variables lists of floats."""

    expression: str  # what was differentiated, e.g. "(x**2).sum()"
    at: dict[str, Number]
    value: Number
    grad: dict[str, Number]  # autograd
    numeric: dict[str, Number]  # central differences
    steps: dict[str, Number]  # their step h
    # the scalar differentiated, as a function of the variables (for plots)
    objective: Callable[[dict[str, torch.Tensor]], torch.Tensor] = field(repr=False)

    def error(self, name: str | None = None) -> float:
        """max |autograd - numeric| / max(1, |autograd|) over the variables (or one)."""
        names = [name] if name is not None else list(self.grad)
        errs = [
            abs(g - n) / max(1.0, abs(g))
            for k in names
            for g, n in zip(_flat(self.grad[k]), _flat(self.numeric[k]), strict=True)
        ]
        return max(errs, default=0.0)

    def __str__(self) -> str:
        at = ", ".join(f"{k} = {_show(v)}" for k, v in self.at.items())
        lines = [f"{self.expression} at {at}", f"  value        {_show(self.value)}"]
        for k in self.grad:
            lines.append(
                f"  d/d{k:<9} {_show(self.grad[k])}   "
                f"(central difference {_show(self.numeric[k], '.10g')}, "
                f"h {_show(self.steps[k], '.2g')})"
            )
        lines.append(f"  autograd and central difference agree to {self.error():.1e} (relative)")
        return "\n".join(lines)


def grad(
    f: str | Callable[..., Any],
    at: Mapping[str, Any] | None = None,
    /,
    *,
    data: str | Path | Mapping[str, Any] | None = None,
    target: str | None = None,
    sum: bool = False,  # noqa: A002 - the CLI's --sum, the book's .sum()
    **values: Any,
) -> Gradient:
    """The value and gradient of `f` at the point given by `at` and/or keyword values.

    Variables named data, target or sum go in the `at` mapping. See the module docstring for
    the rules."""
    point = {**(at or {}), **values}
    variables = {k: _tensor(k, v) for k, v in point.items()}  # float64, 0-d or (m,)
    if not variables:
        raise ConfigError("give the point: a value for each variable, e.g. grad('x**2', x=3)")
    name = f if isinstance(f, str) else getattr(f, "__name__", type(f).__name__)
    if data is None:
        outputs, names = _function(f, variables)
        expression = f"({name}).sum()" if sum else name
    else:
        outputs, names, target, n, where = _mse(f, variables, data, target)
        expression = f"mse({name}, {target}) over {n} rows of {where}"
    _check_names(name, names, variables)

    def objective(v: dict[str, torch.Tensor]) -> torch.Tensor:
        return outputs(v).sum()  # a vector is differentiated as its sum

    leaves = {k: v.clone().requires_grad_(True) for k, v in variables.items()}
    out = outputs(leaves)
    if not torch.isfinite(out).all():
        raise DataError(f"{expression} is not finite at {_point(variables)}: {_show(_py(out))}")
    out.sum().backward()
    grads = {
        k: _py(v.grad if v.grad is not None else torch.zeros_like(v)) for k, v in leaves.items()
    }
    numeric, steps = _central_differences(objective, variables)
    value = _py(out.detach().sum() if sum or data is not None else out.detach())
    return Gradient(
        expression,
        {k: _py(v) for k, v in variables.items()},
        value,
        grads,
        numeric,
        steps,
        objective,
    )


def _function(f, variables):
    """(outputs(values) -> tensor, the names f takes) without data."""
    if isinstance(f, str):
        formula = parse_formula(f, inputs=[])  # every name is a variable
        order = formula.params

        def outputs(v: dict[str, torch.Tensor]) -> torch.Tensor:
            ps = [v[k] for k in order]
            n = max((p.numel() for p in ps if p.dim() > 0), default=0)
            if n == 0:  # all scalars: a scalar
                return formula(torch.zeros(1, dtype=torch.float64), ps).reshape(())
            return _broadcast(lambda: formula(torch.zeros(n, dtype=torch.float64), ps), v)

        return outputs, order

    def call(v: dict[str, torch.Tensor]) -> torch.Tensor:
        return _broadcast(lambda: torch.as_tensor(f(**v), dtype=torch.float64), v)

    return call, _arguments(f, variables)


def _mse(f, variables, data, target):
    """(outputs(values) -> (f - y)**2 / n per row, variable names, target, rows, source)."""
    header, load, where = _source(data)
    if isinstance(f, str):
        names = parse_formula(f, inputs=[]).params
    else:
        names = _arguments(f, variables, header)
    inputs = [c for c in names if c in header and c not in variables]
    target = target if target is not None else _target(header, inputs, variables, where)
    if target not in header:
        raise DataError(f"{where}: no column {target!r}; its columns are {header}")
    if target in inputs:
        raise DataError(
            f"{where}: the target {target!r} (--y) is also an input of the formula; the "
            "target is the column the formula predicts: name another one"
        )
    if isinstance(f, str):  # a formula's parameters are numbers, one per name
        for k, v in variables.items():
            if v.dim() > 0:
                raise ConfigError(
                    f"{k} = {_show(_py(v))}: with data each variable of a formula is one "
                    f"number (a parameter, the same for every row); give {k}=VALUE"
                )
    table = load([*inputs, target])  # name -> (n,) float64
    t = table.pop(target)  # (n,)
    if isinstance(f, str):
        formula = parse_formula(f, inputs=inputs)
        x = torch.stack([table[c] for c in formula.inputs], 1) if formula.inputs else t
        x = x[:, 0] if x.dim() == 2 and x.shape[1] == 1 else x  # (n,) or (n, d)
        names = formula.params

        def preds(v: dict[str, torch.Tensor]) -> torch.Tensor:
            return formula(x, [v[k] for k in names])
    else:
        names = [k for k in names if k not in table]

        def preds(v: dict[str, torch.Tensor]) -> torch.Tensor:
            return torch.as_tensor(f(**v, **table), dtype=torch.float64)

    def outputs(v: dict[str, torch.Tensor]) -> torch.Tensor:
        p = preds(v)
        if p.shape != t.shape:
            raise DataError(f"predictions have shape {tuple(p.shape)}, the target {tuple(t.shape)}")
        return (p - t).square() / len(t)  # (n,): their sum is the MSE

    return outputs, names, target, len(t), where


def _source(data) -> tuple[list[str], Callable[[list[str]], dict[str, torch.Tensor]], str]:
    """(column names, load(names) -> {name: (n,) float64}, where) of a CSV or a mapping."""
    if isinstance(data, Mapping):

        def from_mapping(names: list[str]) -> dict[str, torch.Tensor]:
            out = {}
            for c in names:
                try:
                    out[c] = torch.as_tensor(data[c], dtype=torch.float64).reshape(-1)
                except (TypeError, ValueError) as e:
                    raise DataError(f"data column {c!r} is not numbers ({e})") from None
            return out

        return list(data), from_mapping, "the data"
    from descent.data.tables import read_table

    header = read_table(data, columns=[]).header  # names only: text columns may exist

    def from_file(names: list[str]) -> dict[str, torch.Tensor]:
        return dict(read_table(data, columns=names).columns)

    return header, from_file, str(data)


def _arguments(f: Callable, variables: dict, header: list[str] = ()) -> list[str]:
    """The keyword arguments a function takes (all given ones if it takes **kwargs)."""
    try:
        params = inspect.signature(f).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature
        return [*variables, *header]
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return [*variables, *header]
    return [p.name for p in params if p.kind is not p.VAR_POSITIONAL]


def _target(header, inputs, variables, where) -> str:
    rest = [c for c in header if c not in inputs and c not in variables]
    if len(rest) != 1:
        raise DataError(
            f"{where}: which column is the target? the formula uses {inputs or 'no column'}, "
            f"and {rest or 'no column'} remain; name it with target= (--y)"
        )
    return rest[0]


def _check_names(f_name: str, names: list[str], variables: dict) -> None:
    missing = [k for k in names if k not in variables]
    unknown = [k for k in variables if k not in names]
    if missing or unknown:
        raise ConfigError(
            f"{f_name}: its variables are {', '.join(names) or 'none'}; "
            + (f"no value for {', '.join(missing)}" if missing else "")
            + ("; " if missing and unknown else "")
            + (f"{', '.join(unknown)} not in it" if unknown else "")
        )


def _central_differences(objective, variables) -> tuple[dict[str, Number], dict[str, Number]]:
    numeric, steps = {}, {}
    for k, v in variables.items():
        flat = v.reshape(-1)
        d, hs = torch.empty_like(flat), torch.empty_like(flat)
        for i in range(len(flat)):
            h = EPS ** (1 / 3) * max(1.0, abs(float(flat[i])))
            up, down = flat.clone(), flat.clone()
            up[i] += h
            down[i] -= h
            f_up = objective({**variables, k: up.reshape(v.shape)})
            f_down = objective({**variables, k: down.reshape(v.shape)})
            d[i] = (f_up - f_down) / (up[i] - down[i])  # the step as represented
            hs[i] = h
        numeric[k], steps[k] = _py(d.reshape(v.shape)), _py(hs.reshape(v.shape))
    return numeric, steps


def _broadcast(compute: Callable[[], torch.Tensor], v: dict) -> torch.Tensor:
    try:
        return compute()
    except RuntimeError as e:
        if "size" not in str(e) and "shape" not in str(e):
            raise
        sizes = ", ".join(f"{k} has {t.numel()}" for k, t in v.items() if t.dim())
        raise ConfigError(f"the values do not broadcast together ({sizes}): {e}") from None


def _tensor(name: str, value: Any) -> torch.Tensor:
    try:
        t = torch.as_tensor(value, dtype=torch.float64).detach().clone()
    except (TypeError, ValueError, RuntimeError):
        raise ConfigError(f"{name} = {value!r}: give a number or a list of numbers") from None
    if t.dim() > 1 or t.numel() == 0:
        raise ConfigError(f"{name}: give a number or a non-empty list, got shape {tuple(t.shape)}")
    if t.numel() > MAX_VALUES:
        raise ConfigError(
            f"{name}: {t.numel():,} values; at most {MAX_VALUES:,} are checked (two "
            "evaluations of the function each): give fewer"
        )
    if not torch.isfinite(t).all():
        bad = int((~torch.isfinite(t.reshape(-1))).nonzero()[0])
        where = f" (value {bad + 1} of {t.numel()})" if t.dim() else ""
        shown = _show(_py(t.reshape(-1)[bad]))
        raise ConfigError(f"{name} = {shown}{where}: values must be finite")
    return t


def _py(t: torch.Tensor) -> Number:
    """0-d -> float, (m,) -> list of floats."""
    return float(t.detach()) if t.dim() == 0 else t.detach().tolist()


def _flat(v: Number) -> list[float]:
    return v if isinstance(v, list) else [v]


def _show(v: Number, spec: str = ".8g") -> str:
    if isinstance(v, list):
        return "[" + ", ".join(format(x, spec) for x in v) + "]"
    return format(v, spec) if math.isfinite(v) else str(v)


def _point(variables: dict[str, torch.Tensor]) -> str:
    return ", ".join(f"{k} = {_show(_py(v))}" for k, v in variables.items())
