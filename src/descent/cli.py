"""The `descent` command. Thin: parse -> config -> one library call -> print / exit code.

Exit codes: 0 done; 1 unexpected error; 2 bad input or options (the message says
which and what would work); 130 interrupted by Ctrl-C; 143 by SIGTERM.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from descent import __version__
from descent.errors import DescentError

EXIT_INTERRUPT = {"SIGINT": 130, "SIGTERM": 143}


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad options with exit status 2 and a hint."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n(see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", "-q", action="store_true", help="print only the summary")
    common.add_argument("--debug", action="store_true", help="show tracebacks for errors")

    parser = _Parser(
        prog="descent",
        description=(
            "Train models by gradient descent and see every step: fit a formula to the "
            "columns of a CSV, or train a pixel classifier on images."
        ),
        epilog="Start with `descent demo`, then `descent explain` to see the loop.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"descent {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    demo = sub.add_parser(
        "demo",
        parents=[common],
        help="the book's roller-coaster, end to end, with plots and a summary",
        description=(
            "Runs the roller-coaster from fastbook chapter 4: first with the book's settings "
            "(plain SGD, lr 1e-5, 10 steps), then to convergence by standardising the input. "
            "Writes plots and a summary to --out."
        ),
    )
    demo.add_argument("--out", default="runs/demo", help="run directory (default: runs/demo)")
    demo.add_argument(
        "--seed", type=int, default=42, help="seed for the data and the start (default: 42)"
    )
    demo.set_defaults(run=_run_demo)

    explain = sub.add_parser(
        "explain",
        parents=[common],
        help="print the seven-step training loop with its callbacks",
        description=(
            "Prints the loop that every descent command runs, "
            "with the callbacks attached to each event."
        ),
    )
    explain.set_defaults(run=_run_explain)
    return parser


def _run_demo(args: argparse.Namespace) -> int:
    from descent.config import DemoConfig
    from descent.demo import run_demo

    result = run_demo(DemoConfig(out=args.out, seed=args.seed, quiet=args.quiet))
    return _exit_code(result.fit.stopped, getattr(result, "interrupted_by", None))


def _run_explain(args: argparse.Namespace) -> int:
    from descent.data.batches import Batches
    from descent.data.synthetic import quadratic, roller_coaster
    from descent.learner import Learner
    from descent.models.function import FunctionModel
    from descent.stopping import Converged, EarlyStopping

    t, speed = roller_coaster()
    learner = Learner(
        FunctionModel(quadratic, ["a", "b", "c"], [1.0, 1.0, 1.0]),
        Batches(t, speed),
        loss="mse",
        optimizer="sgd",
        lr=1e-5,
        callbacks=[EarlyStopping(), Converged()],
    )
    print("The seven steps of learning, as descent runs them (the demo's learner):\n")
    print(learner.explain())
    return 0


def _exit_code(stopped: str, signal_name: str | None) -> int:
    if stopped == "interrupted":
        return EXIT_INTERRUPT.get(signal_name or "SIGINT", 130)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except DescentError as e:
        if args.debug:
            traceback.print_exc()
        print(f"descent {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"descent {args.command}: aborted", file=sys.stderr)
        return 130
