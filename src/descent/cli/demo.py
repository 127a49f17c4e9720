"""`descent demo`: its options and how they become one command call."""

from __future__ import annotations

import argparse

from descent.cli.common import exit_status
from descent.commands.config import DemoConfig


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
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
    demo.add_argument(
        "--out",
        default=DemoConfig.out,
        help=f"run directory, new or empty (default: {DemoConfig.out})",
    )
    demo.add_argument(
        "--seed",
        type=int,
        default=DemoConfig.seed,
        help=f"seed for the data and the start (default: {DemoConfig.seed})",
    )
    demo.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a previous descent run in --out (its files only; never other files)",
    )
    demo.set_defaults(run=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from descent.commands.demo import demo_command

    cfg = DemoConfig(out=args.out, seed=args.seed, quiet=args.quiet)
    result = demo_command(cfg, overwrite=args.overwrite)
    return exit_status(result.converged)
