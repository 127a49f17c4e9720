"""`descent report`: its options and how they become one command call."""

from __future__ import annotations

import argparse

from descent.cli.common import ExitStatus


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    report = sub.add_parser(
        "report",
        parents=[common],
        help="write report.html of a train or fit run (one file, opens offline)",
        description=(
            "Writes RUN_DIR/report.html from the run's folder alone: its configuration, the "
            "loss and metric curves, the epoch table, the weights or the fitted curve, the "
            "final parameters or metrics, why it stopped, and its plots, all in one file "
            "that opens from file:// with no network. Every train and fit run writes it "
            "when it ends; this rewrites it (for a stopped run, or one still going)."
        ),
    )
    report.add_argument("run_dir", help="the run directory of a train or fit")
    report.add_argument("--out", help="write the report here instead of RUN_DIR/report.html")
    report.set_defaults(run=run_report)


def run_report(args: argparse.Namespace) -> int:
    from descent.commands.report import report_command

    report_command(args.run_dir, args.out)
    return ExitStatus.SUCCESS
