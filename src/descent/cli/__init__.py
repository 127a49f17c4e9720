"""The `descent` command. Thin: parse -> config -> one command call -> exit status.

Each command's options live in the module of its name here (train.py, fit.py, ...),
their defaults come from commands/config.py and their choices from options.py, so the
help always says what the code does. Nothing here imports torch: `descent --help`
and a bad option are answered at once; a command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from descent import __version__
from descent.cli import demo, explain, fit, grad, lr_tools, predict, resume, train
from descent.cli.common import ExitStatus
from descent.errors import DescentError

COMMANDS = (demo, train, predict, fit, grad, lr_tools, resume, explain)  # in the help's order


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

    for command in COMMANDS:
        command.add_parser(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return ExitStatus.BAD_INPUT
    try:
        return args.run(args)
    except DescentError as e:
        if args.debug:
            traceback.print_exc()
        print(f"descent {args.command}: error: {e}", file=sys.stderr)
        return ExitStatus.BAD_INPUT
    except KeyboardInterrupt:
        print(f"descent {args.command}: aborted", file=sys.stderr)
        return ExitStatus.SIGINT
