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
            "Rebuilds the run from RUN_DIR/config.json, checks that its data is the same "
            "(by the fingerprint config.json holds), loads the newest intact checkpoint of "
            "this run in RUN_DIR/checkpoints and trains on to the configured end: the result "
            "equals an uninterrupted run's."
        ),
    )
    resume.add_argument("run_dir", help="the run directory of an earlier train or fit")
    resume.add_argument(
        "--data",
        metavar="PATH",
        help="where the run's data is now, if it moved (it must be the same data: it is "
        "checked against the fingerprint in config.json)",
    )
    resume.set_defaults(run=run_resume)


def run_resume(args: argparse.Namespace) -> int:
    from descent.commands.resume import resume_command

    result = resume_command(args.run_dir, quiet=args.quiet, data=args.data)
    return exit_status(result.fit_result, result.finish_signal)
