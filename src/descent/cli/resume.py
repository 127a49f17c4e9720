"""`descent resume`: its options and how they become one command call."""

from __future__ import annotations

import argparse

from descent.cli.common import exit_status


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    resume = sub.add_parser(
        "resume",
        parents=[common],
        help="continue an interrupted train or fit run from its last checkpoint",
        description=(
            "Rebuilds the run from RUN_DIR/config.json, loads the newest intact checkpoint "
            "in RUN_DIR/checkpoints and trains on to the configured end: the result equals "
            "an uninterrupted run's."
        ),
    )
    resume.add_argument("run_dir", help="the run directory of an earlier train or fit")
    resume.set_defaults(run=run_resume)


def run_resume(args: argparse.Namespace) -> int:
    from descent.commands.resume import resume_command

    return exit_status(resume_command(args.run_dir, quiet=args.quiet).fit_result)
