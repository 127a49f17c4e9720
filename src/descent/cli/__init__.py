"""The `descent` command. Thin: parse -> config -> one command call -> exit status.

Each command's options live in the module of its name here (train.py, fit.py, ...),
their defaults come from commands/config.py and their choices from options.py, so the
help always says what the code does. Nothing here imports torch: `descent --help`
and a bad option are answered at once; a command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
import traceback
from collections.abc import Callable, Sequence

from descent import __version__
from descent.cli import demo, explain, fit, grad, lr_tools, predict, report, resume, train, watch
from descent.cli.common import ExitStatus
from descent.distributed.threads import prepare_openmp
from descent.errors import DescentError

COMMANDS = (
    demo,
    train,
    predict,
    fit,
    grad,
    lr_tools,
    resume,
    watch,
    report,
    explain,
)  # in the help's order


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
    parser.set_defaults(subparsers=sub.choices)  # name -> its parser, for its own usage
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    before_run: Callable[[argparse.Namespace], object] | None = None,
) -> int:
    """Parse the options and run the command; returns the exit status. `before_run(args)`
    is called once the options are parsed, before the command runs (console_main's)."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, unknown = parser.parse_known_args(argv)
    args.argv = argv  # the command line, for train --nproc (it runs it again under torchrun)
    if unknown:  # said by the command's own parser, with its usage, not descent's
        own = args.subparsers.get(args.command, parser) if args.command else parser
        own.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        parser.print_help()
        return ExitStatus.BAD_INPUT
    try:
        if before_run is not None:
            before_run(args)
        return args.run(args)
    except DescentError as e:
        if args.debug:
            traceback.print_exc()
        print(f"descent {args.command}: error: {e}", file=sys.stderr)
        return ExitStatus.BAD_INPUT
    except KeyboardInterrupt:
        print(f"descent {args.command}: aborted", file=sys.stderr)
        return ExitStatus.SIGINT


def console_main() -> int:
    """The `descent` program (and `python -m descent`): `main`, with the garbage
    collector kept off the objects that live until the process ends.

    Importing torch and a command's modules (pyarrow, rich, ...) makes ~200,000 objects
    that live until exit. Every full collection walks them again (0.1-0.3 s each here,
    one or more in a small job), and so does the interpreter's last collection at exit
    (0.4 s after `import torch` alone, 0.7-1 s after a fit or a train): more than a
    small job's own work. gc.freeze() takes what is alive out of the collector's reach:
    once the command's module is imported (after the options are parsed: --help and a
    bad option end before, torch-free), and when the command is done. Python never
    promised finalizers of objects alive at exit; atexit handlers and the flushing of
    stdout and stderr still run. Not in `main`: a process that goes on after it (a test,
    a notebook) keeps its collector as it is."""
    prepare_openmp()  # OpenMP's spin before it sleeps, set before torch starts it (threads.py)
    status = main(before_run=_import_command_then_freeze)
    gc.freeze()
    return status


def _import_command_then_freeze(args: argparse.Namespace) -> None:
    """Import the command's module (cli/NAME.py runs commands/NAME.py, which imports
    torch), then freeze what is alive."""
    importlib.import_module(args.run.__module__.replace("descent.cli.", "descent.commands.", 1))
    gc.freeze()
