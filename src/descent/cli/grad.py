"""`descent grad`: its options and how they become one command call."""

from __future__ import annotations

import argparse

from descent.cli.common import ExitStatus
from descent.commands.config import GradConfig
from descent.errors import ConfigError


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    grad = sub.add_parser(
        "grad",
        parents=[common],
        help="the value and gradient of a formula at a point (autograd, checked)",
        description=(
            "Differentiates a formula by autograd at the point given with --at and prints "
            "the value, the gradient and a central finite-difference check beside it. A "
            "list of values is the book's rank-1 tensor: its gradient is that of the sum. "
            "With --data the value is the mean squared error of the formula against the "
            "file's target column (names that are columns are inputs), and the gradient is "
            "what the training loop's step 4 computes. Formulas go through the same "
            "whitelist as `descent fit`: nothing is evaluated."
        ),
        epilog=(
            'Examples: descent grad "x**2" --at x=3 | descent grad "x**2" --at x=3,4,10 --sum'
            ' | descent grad "a*t**2+b*t+c" --at a=1,b=2,c=3 --data coaster.csv --y speed'
        ),
    )
    grad.add_argument("formula", help='e.g. "x**2" or "a*t**2 + b*t + c"')
    grad.add_argument(
        "--at",
        action="append",
        metavar="NAME=V[,V...]",
        help="the point: x=3, several variables a=1,b=2,c=3, or a list x=3,4,10 (repeatable)",
    )
    grad.add_argument(
        "--sum",
        action="store_true",
        default=None,
        help="report the sum of a rank-1 result (the book's (x**2).sum())",
    )
    grad.add_argument("--data", help="a CSV/TSV: the gradient of the MSE against its columns")
    grad.add_argument(
        "--y", help="the target column of --data (default: the one column the formula leaves)"
    )
    grad.add_argument(
        "--plot",
        nargs="?",
        const=GradConfig.PLOT_FILE,
        metavar="FILE",
        help=f"draw the function and its tangent at the point (default file: "
        f"{GradConfig.PLOT_FILE})",
    )
    grad.add_argument("--var", help="the variable to plot (default: the first)")
    grad.add_argument("--json", help="also write the value and gradient to this JSON file")
    grad.set_defaults(run=run_grad)


def parse_point(texts: list[str]) -> dict[str, float | list[float]]:
    """['a=1,b=2', 'x=3,4,10'] -> {'a': 1.0, 'b': 2.0, 'x': [3.0, 4.0, 10.0]}: a piece with
    '=' starts a variable, the pieces after it without one add values to it."""
    point: dict[str, list[float]] = {}
    for text in texts:
        name = None
        for piece in (p.strip() for p in text.split(",")):
            if "=" in piece:
                name, _, piece = (s.strip() for s in piece.partition("="))
                if not name.isidentifier():
                    raise ConfigError(f"--at {text!r}: {name!r} is not a variable name")
                if name in point:
                    raise ConfigError(f"--at: {name} is given twice")
                point[name] = []
            if name is None:
                raise ConfigError(f"--at {text!r}: write name=value, e.g. --at x=3")
            try:
                point[name].append(float(piece))
            except ValueError:
                raise ConfigError(f"--at {text!r}: {piece!r} is not a number") from None
    return {k: v[0] if len(v) == 1 else v for k, v in point.items()}


def run_grad(args: argparse.Namespace) -> int:
    from descent.commands.grad import grad_command

    cfg = GradConfig(
        formula=args.formula,
        at=parse_point(args.at or []),
        sum=bool(args.sum),
        data=args.data,
        y=args.y,
        plot=args.plot,
        var=args.var,
        json=args.json,
        quiet=args.quiet,
    )
    grad_command(cfg)
    return ExitStatus.SUCCESS
