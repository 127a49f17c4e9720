"""A safe formula language for curve fitting: `"b1*(1-exp(-b2*x))"` -> torch function.

    formula = parse_formula("a*t**2 + b*t + c")   # params a, b, c; input t
    model = FormulaModel(formula, init={"a": 1, "b": 0.5, "c": 0.1})
    model(t)                                      # (n,) -> (n,)

The text is parsed with `ast.parse(mode="eval")` and checked against a whitelist;
nothing is ever passed to eval, exec or compile. The checked tree is turned once,
at parse time, into a tree of small closures that call torch operations, so a
call costs only the torch ops and autograd gives the gradient.
"""

from __future__ import annotations

import ast
import difflib
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from descent.errors import ConfigError, DataError, FormulaError
from descent.models.function import FunctionModel

MAX_CHARS = 2_000  # longer than any formula a person types; checked before ast.parse
MAX_NODES = 500  # expression nodes; the Gauss NIST formula has about 50
MAX_DEPTH = 50  # nesting levels; keeps both building and evaluation far from RecursionError
MAX_EXPONENT = 1_000  # |constant exponent|; 9**9**9**9 stops here, never computed

# fmt: off
# name -> (torch function, number of arguments)
FUNCTIONS: dict[str, tuple[Callable[..., torch.Tensor], int]] = {
    "exp": (torch.exp, 1), "log": (torch.log, 1), "log10": (torch.log10, 1),
    "log2": (torch.log2, 1), "sqrt": (torch.sqrt, 1), "abs": (torch.abs, 1),
    "sin": (torch.sin, 1), "cos": (torch.cos, 1), "tan": (torch.tan, 1),
    "arcsin": (torch.asin, 1), "arccos": (torch.acos, 1), "arctan": (torch.atan, 1),
    "asin": (torch.asin, 1), "acos": (torch.acos, 1), "atan": (torch.atan, 1),
    "sinh": (torch.sinh, 1), "cosh": (torch.cosh, 1), "tanh": (torch.tanh, 1),
    "arctan2": (torch.atan2, 2), "atan2": (torch.atan2, 2),
}
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}
BINARY_OPS: dict[type, Callable] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.Pow: operator.pow,
}
OPERATOR_NAMES = {
    ast.FloorDiv: "//", ast.Mod: "%", ast.MatMult: "@", ast.LShift: "<<", ast.RShift: ">>",
    ast.BitOr: "|", ast.BitXor: "^", ast.BitAnd: "&", ast.Not: "not", ast.Invert: "~",
}
# What a rejected node is, in words, for the message.
DESCRIBE: dict[type, str] = {
    ast.Attribute: "attribute access (a.b)", ast.Subscript: "indexing (a[i])",
    ast.Lambda: "lambda", ast.ListComp: "a comprehension", ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension", ast.GeneratorExp: "a comprehension",
    ast.Compare: "a comparison", ast.BoolOp: "and/or", ast.IfExp: "an if/else expression",
    ast.NamedExpr: "assignment (:=)", ast.JoinedStr: "an f-string", ast.Starred: "unpacking (*)",
    ast.List: "a list", ast.Tuple: "a tuple", ast.Dict: "a dict", ast.Set: "a set",
    ast.Yield: "yield", ast.YieldFrom: "yield", ast.Await: "await", ast.Slice: "a slice",
}
# fmt: on
ALLOWED = (
    "allowed: numbers, names (parameters and input columns), + - * / ** and unary -, "
    f"parentheses, the functions {', '.join(FUNCTIONS)}, and the constants pi and e"
)

Fn = Callable[[tuple, tuple], torch.Tensor]  # (inputs, params) -> tensor


def _pointer(text: str, lineno: int, col: int, message: str) -> FormulaError:
    """FormulaError showing the formula line with a caret under character `col` (0-based)."""
    lines = text.splitlines() or [""]
    line = lines[min(max(lineno, 1), len(lines)) - 1]
    shown = "".join(c if c.isprintable() else "?" for c in line)  # one column per character
    where = (
        f"\n  {shown}\n  {' ' * col}^" if len(line) <= 200 else f" (line {lineno}, col {col + 1})"
    )
    return FormulaError(f"formula not allowed: {message}{where}\n{ALLOWED}")


def _fail(text: str, node: ast.AST, message: str, at_operator: bool = True) -> FormulaError:
    lineno, offset = getattr(node, "lineno", 1), getattr(node, "col_offset", 0)
    lines = text.splitlines() or [""]
    line = lines[min(lineno, len(lines)) - 1]
    if (
        at_operator
        and isinstance(node, (ast.BinOp, ast.Compare))
        and node.left.end_lineno == lineno
    ):
        # point at the operator: the first character after the left operand and its ")"
        rest = line.encode()[node.left.end_col_offset :]
        offset = node.left.end_col_offset + len(rest) - len(rest.lstrip(b") \t"))
    # ast offsets count UTF-8 bytes; the caret counts characters.
    col = len(line.encode()[:offset].decode(errors="ignore"))
    return _pointer(text, lineno, col, message)


def _snippet(text: str, node: ast.AST) -> str:
    seg = ast.get_source_segment(text, node) or type(node).__name__
    return seg if len(seg) <= 60 else seg[:57] + "..."


@dataclass(frozen=True)
class Formula:
    """A checked formula: its text, parameters and inputs (each in order of first use).

    `formula(x, params)` evaluates it: x is (n,) for one input or (n, d) with columns
    in `inputs` order, params is (k,) in `params` order; the result is (n,).
    """

    text: str
    params: list[str]
    inputs: list[str]
    _root: Fn = field(repr=False, compare=False)

    def __str__(self) -> str:
        return self.text

    def __call__(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        d = len(self.inputs)
        if d == 0:
            xs = ()
        elif d == 1 and x.dim() == 1:
            xs = (x,)  # (n,)
        elif x.dim() == 2 and x.shape[1] == d:
            xs = x.unbind(1)  # (n, d) -> d tensors of (n,)
        else:
            raise DataError(
                f"formula {self.text!r} has {d} input(s) {self.inputs} but x has shape "
                f"{tuple(x.shape)}; pass (n,) for one input or (n, {d}) with columns in that order"
            )
        # params: a (k,) tensor, or k tensors (e.g. per-observation rows for a Jacobian)
        ps = tuple(params) if isinstance(params, (tuple, list)) else params.unbind()
        out = self._root(xs, ps)
        if d == 0:  # no input in the formula: a constant curve, (n,) like the rest
            out = out.expand(x.shape[0])
        return out  # (n,)

    def evaluate(
        self, columns: Sequence[torch.Tensor], params: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """The formula on inputs and parameters of any broadcastable shapes: `columns`
        in `inputs` order, `params` in `params` order (fitting/many.py passes (M, G)
        input columns and (M, G) stride-0 views of (G,) parameters: no copies)."""
        return self._root(tuple(columns), tuple(params))

    def as_function(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The torch function `fn(x, params) -> preds` (see the class docstring)."""

        def formula(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
            return self(x, params)

        return formula


def parse_formula(text: str, inputs: Sequence[str] | None = None) -> Formula:
    """Check `text` against the whitelist and build a `Formula`.

    Rules:
    - Allowed: int/float literals, names, `+ - * / **`, unary `-`/`+`, parentheses,
      calls by bare name of the functions in `FUNCTIONS` (positional arguments only),
      and the constants `pi` and `e`. Everything else raises FormulaError with a caret
      under the offending part.
    - A name listed in `inputs` is an input (a data column), even if it is `e` or `pi`;
      with `inputs=None` the single input is `x` if used, else `t`, else it is an error.
      Every other name is a parameter. Both lists keep the order of first appearance;
      inputs that the formula does not use are left out.
    - Limits: at most 2,000 characters, 500 expression nodes and 50 levels of nesting;
      a constant exponent must be finite and at most 1,000 in magnitude; constant
      parts (e.g. `2*pi`) are folded once in float64 and must come out finite.
    - There must be at least one parameter.
    """
    if not isinstance(text, str):
        raise FormulaError(f"a formula must be text, got {type(text).__name__}")
    if len(text) > MAX_CHARS:
        raise FormulaError(
            f"formula is {len(text):,} characters long; at most {MAX_CHARS:,} are allowed"
        )
    if not text.strip():
        raise FormulaError("formula is empty; write one such as 'a*x + b'")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        col = max((err.offset or 1) - 1, 0)
        raise _pointer(text.strip(), err.lineno or 1, col, f"cannot parse it ({err.msg})") from None
    except (RecursionError, MemoryError, ValueError) as err:
        raise FormulaError(
            f"formula cannot be parsed ({type(err).__name__}: {err}); "
            "is it nested too deeply or does it contain odd characters?"
        ) from None
    text = text.strip()
    _check_size(text, tree)

    if inputs is None:
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        default = [name for name in ("x", "t") if name in used][:1]
    builder = _Builder(text, default if inputs is None else list(inputs))
    _, root = builder.build(tree.body)  # checks every node first
    if inputs is None and not default:
        raise FormulaError(
            f"formula {text!r} uses neither x nor t, so which names are data columns? "
            "Name them with --x NAME (or inputs=[...] in Python)"
        )
    if not builder.params:
        raise FormulaError(
            f"formula {text!r} has no parameters to fit: every name in it is an input "
            f"({', '.join(builder.inputs) or 'none'}) or a constant; add one, e.g. 'a*{text}'"
        )
    return Formula(text, builder.params, builder.inputs, root)


def _check_size(text: str, tree: ast.Expression) -> None:
    """Count nodes and nesting without recursion (the tree may be absurdly deep)."""
    n_nodes = sum(isinstance(node, ast.expr) for node in ast.walk(tree))  # iterative
    if n_nodes > MAX_NODES:
        raise FormulaError(
            f"formula has {n_nodes} parts (numbers, names, operations); at most {MAX_NODES} "
            "are allowed: simplify it"
        )
    stack: list[tuple[ast.AST, int]] = [(tree.body, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _fail(
                text,
                node,
                f"formula is nested more than {MAX_DEPTH} levels deep "
                "(each term of a long sum or product counts as one level)",
                at_operator=False,
            )
        stack.extend((c, depth + 1) for c in ast.iter_child_nodes(node) if isinstance(c, ast.expr))


class _Builder:
    """Walks the checked AST once, returning ("const", float) or ("expr", closure)."""

    def __init__(self, text: str, inputs: list[str]) -> None:
        self.text = text
        self.allowed_inputs = inputs
        self.inputs: list[str] = []
        self.params: list[str] = []

    def fail(self, node: ast.AST, message: str, at_operator: bool = True) -> FormulaError:
        return _fail(self.text, node, message, at_operator)

    def build(self, node: ast.AST) -> tuple[str, float | Fn]:
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            kind, v = self.build(node.operand)
            if isinstance(node.op, ast.UAdd):
                return kind, v
            if kind == "const":
                return "const", -v
            return "expr", lambda xs, ps: -v(xs, ps)
        if isinstance(node, ast.BinOp) and type(node.op) in BINARY_OPS:
            return self.binop(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, (ast.BinOp, ast.UnaryOp)):
            op = OPERATOR_NAMES.get(type(node.op), type(node.op).__name__)
            raise self.fail(node, f"the operator {op} in `{_snippet(self.text, node)}`")
        what = DESCRIBE.get(type(node), type(node).__name__)
        raise self.fail(node, f"{what} in `{_snippet(self.text, node)}`")

    def constant(self, node: ast.Constant) -> tuple[str, float]:
        v = node.value
        if type(v) not in (int, float):  # bool is an int subclass; complex, str, bytes, None
            kind = {str: "a string", bytes: "bytes", complex: "a complex number"}.get(
                type(v), repr(v)
            )
            raise self.fail(node, f"{kind} `{_snippet(self.text, node)}` is not a real number")
        try:
            value = float(v)
        except OverflowError:
            value = math.inf
        if not math.isfinite(value):
            raise self.fail(node, f"the number `{_snippet(self.text, node)}` is not finite")
        return "const", int(v) if type(v) is int else value

    def name(self, node: ast.Name) -> tuple[str, float | Fn]:
        name = node.id
        if name.startswith("__") or name.endswith("__"):
            raise self.fail(node, f"the name `{name}`: names may not start or end with __")
        if name in self.allowed_inputs:
            if name not in self.inputs:
                self.inputs.append(name)
            j = self.inputs.index(name)
            return "expr", lambda xs, ps: xs[j]
        if name in FUNCTIONS:
            raise self.fail(node, f"`{name}` is a function: call it, as in {name}(x)")
        if name in CONSTANTS:
            return "const", CONSTANTS[name]
        if name not in self.params:
            self.params.append(name)
        i = self.params.index(name)
        return "expr", lambda xs, ps: ps[i]

    def binop(self, node: ast.BinOp) -> tuple[str, float | Fn]:
        op = BINARY_OPS[type(node.op)]
        lk, lv = self.build(node.left)
        rk, rv = self.build(node.right)
        if isinstance(node.op, ast.Pow) and rk == "const":
            if abs(rv) > MAX_EXPONENT:
                raise self.fail(
                    node.right,
                    f"the exponent in `{_snippet(self.text, node)}` is {rv:.6g}; "
                    f"constant exponents must be at most {MAX_EXPONENT} in magnitude",
                    at_operator=False,
                )
            if float(rv).is_integer():
                rv = int(rv)  # x**2 uses the integer power
        if lk == "const" and rk == "const":
            return self.fold(node, op, lv, rv)
        if lk == "const":
            return "expr", lambda xs, ps: op(lv, rv(xs, ps))
        if rk == "const":
            return "expr", lambda xs, ps: op(lv(xs, ps), rv)
        return "expr", lambda xs, ps: op(lv(xs, ps), rv(xs, ps))

    def call(self, node: ast.Call) -> tuple[str, float | Fn]:
        func = node.func
        if not isinstance(func, ast.Name):
            raise self.fail(node, f"calling `{_snippet(self.text, func)}`: call functions by name")
        name = func.id
        if name not in FUNCTIONS:
            what = "a constant" if name in CONSTANTS else "not a known function"
            close = difflib.get_close_matches(name, list(FUNCTIONS), n=1)
            hint = f" (did you mean {close[0]}?)" if close and what != "a constant" else ""
            raise self.fail(node, f"`{name}` is {what}{hint}")
        fn, n_args = FUNCTIONS[name]
        if node.keywords:
            raise self.fail(node.keywords[0], f"keyword argument in `{name}(...)`")
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise self.fail(arg, f"unpacking (*) in `{name}(...)`")
        if len(node.args) != n_args:
            raise self.fail(node, f"`{name}` takes {n_args} argument(s), got {len(node.args)}")
        args = [self.build(a) for a in node.args]
        if all(k == "const" for k, _ in args):
            return self.fold(node, fn, *(v for _, v in args))
        if n_args == 1:
            a = args[0][1]
            return "expr", lambda xs, ps: fn(a(xs, ps))
        (ak, a), (bk, b) = args
        if ak == "const":  # torch.atan2 wants tensors: a constant takes the other's shape
            return "expr", lambda xs, ps: _const_first(fn, a, b(xs, ps))
        if bk == "const":
            return "expr", lambda xs, ps: _const_last(fn, a(xs, ps), b)
        return "expr", lambda xs, ps: fn(a(xs, ps), b(xs, ps))

    def fold(self, node: ast.AST, fn: Callable, *values: float) -> tuple[str, float]:
        """Evaluate a constant part once, in float64 torch (overflow gives inf, not a hang)."""
        args = [torch.tensor(float(v), dtype=torch.float64) for v in values]
        if fn is operator.pow:  # keep an integer exponent exact
            args[1] = values[1] if isinstance(values[1], int) else args[1]
        value = float(fn(*args))
        if not math.isfinite(value):
            raise self.fail(node, f"the constant part `{_snippet(self.text, node)}` is {value}")
        return "const", value


def _const_first(fn: Callable, a: float, b: torch.Tensor) -> torch.Tensor:
    return fn(torch.full_like(b, a), b)


def _const_last(fn: Callable, a: torch.Tensor, b: float) -> torch.Tensor:
    return fn(a, torch.full_like(a, b))


class FormulaModel(FunctionModel):
    """A `FunctionModel` whose function is a parsed formula [1 init, 2 predict].

    The formula is elementwise: prediction k depends on observation k alone, which
    lets Levenberg-Marquardt get the whole Jacobian in one backward pass.

    `init` gives starting values: a mapping {name: value} must name every parameter
    (missing or unknown names raise ConfigError), a sequence gives them in
    `formula.params` order, and None starts every parameter at 1.0.
    `inputs` is passed to `parse_formula` when `formula` is text.
    """

    def __init__(
        self,
        formula: Formula | str,
        init: Mapping[str, float] | Sequence[float] | None = None,
        inputs: Sequence[str] | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        if isinstance(formula, str):
            formula = parse_formula(formula, inputs)
        elif inputs is not None and list(inputs) != formula.inputs:
            raise ConfigError(
                f"inputs={list(inputs)} but the parsed formula already has inputs "
                f"{formula.inputs}; pass the formula as text to choose its inputs"
            )
        names = formula.params
        if init is None:
            values = [1.0] * len(names)
        elif isinstance(init, Mapping):
            unknown = [k for k in init if k not in names]
            if unknown:
                raise ConfigError(
                    f"init names {unknown} are not parameters of {formula.text!r}; "
                    f"its parameters are {names}"
                )
            missing = [n for n in names if n not in init]
            if missing:
                raise ConfigError(
                    f"no initial value for {missing} in {formula.text!r}; give every "
                    f"parameter ({', '.join(names)}) a value, or none to start all at 1.0"
                )
            values = [init[n] for n in names]
        else:
            values = list(init)
            if len(values) != len(names):
                raise ConfigError(
                    f"{len(values)} initial values for the {len(names)} parameters "
                    f"({', '.join(names)}) of {formula.text!r}"
                )
        try:
            values = [float(v) for v in values]
        except (TypeError, ValueError) as err:
            raise ConfigError(f"initial values must be numbers: {err}") from None
        bad = [n for n, v in zip(names, values, strict=True) if not math.isfinite(v)]
        if bad:
            raise ConfigError(f"initial values for {bad} are not finite")
        super().__init__(formula.as_function(), names, values, dtype=dtype)
        self.formula = formula
        self.init = values

    kind = "formula"
    elementwise = True

    def config(self) -> dict:
        """Constructor arguments, for model.json (the formula as text, never code)."""
        return {"formula": self.formula.text, "inputs": self.formula.inputs, "init": self.init}

    def extra_repr(self) -> str:
        vals = ", ".join(f"{k}={v:.6g}" for k, v in self.values().items())
        return f"formula={self.formula.text!r}, inputs={self.formula.inputs}, params: {vals}"
