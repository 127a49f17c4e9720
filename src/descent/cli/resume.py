"""`descent resume`: its options and how they become one command call."""

from __future__ import annotations

import argparse

from descent.cli.common import (
    add_device_options,
    add_watch_options,
    exit_status,
    tensorboard,
    watching,
)


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    resume = sub.add_parser(
        "resume",
        parents=[common],
        help="continue a stopped train or fit run, or extend a finished one",
        description=(
            "Rebuilds the run from RUN_DIR/config.json, checks that its data is the same "
            "(by the fingerprint config.json holds), loads the newest intact checkpoint of "
            "this run in RUN_DIR/checkpoints and trains on to the configured end: the result "
            "equals an uninterrupted run's. With --epochs N (or --steps N) the run goes on to "
            "that new length, also when it had finished: at a constant rate the result equals "
            "one run of that length. A one-cycle or cosine schedule is defined over the "
            "original length and is not extended; step continues its staircase."
        ),
    )
    resume.add_argument("run_dir", help="the run directory of an earlier train or fit")
    resume.add_argument(
        "--data",
        metavar="PATH",
        help="where the run's data is now, if it moved (it must be the same data: it is "
        "checked against the fingerprint in config.json)",
    )
    length = resume.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, help="extend the run to N epochs in all")
    length.add_argument("--steps", type=int, help="extend the run to N steps in all")
    add_device_options(resume)
    add_watch_options(resume)
    resume.set_defaults(run=run_resume)


def run_resume(args: argparse.Namespace) -> int:
    from descent.commands.resume import resume_command

    with watching(args) as watch, tensorboard(args) as board:
        done = resume_command(
            args.run_dir, quiet=args.quiet, data=args.data, epochs=args.epochs,
            steps=args.steps, callbacks=board, watch=watch, device=args.device,
            threads=args.threads,
        )  # fmt: skip
    return exit_status(done.fit_result, done.finish_signal)
