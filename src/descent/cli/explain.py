"""`descent explain`: its options and how they become one command call."""

from __future__ import annotations

import argparse

from descent.cli.common import ExitStatus


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    explain = sub.add_parser(
        "explain",
        parents=[common],
        help="print the seven-step training loop with its callbacks",
        description=(
            "Prints the loop that every descent command runs, "
            "with the callbacks attached to each event."
        ),
    )
    explain.set_defaults(run=run_explain)


def run_explain(args: argparse.Namespace) -> int:
    from descent.commands.explain import explain_command

    print(explain_command())
    return ExitStatus.SUCCESS
