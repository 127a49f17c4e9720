"""`descent lr-find` and `descent lr-sweep`: its options and how they become one command call."""

from __future__ import annotations

import argparse

from descent.cli.common import (
    ExitStatus,
    add_device_options,
    add_output_options,
    add_watch_options,
    default,
    given_options,
    parse_init,
    watching,
)
from descent.commands.config import FitConfig, TrainConfig
from descent.options import (
    CLASSIFIER_LOSSES,
    LR_FIND_END,
    LR_FIND_START,
    LR_FIND_STEPS,
    LR_SWEEP_EPOCHS,
    LR_SWEEP_RATES,
    OPTIMIZERS,
)


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    for name, help_text, desc in (
        (
            "lr-find",
            "find a learning rate: loss against an exponentially growing rate",
            "Runs the learning-rate range test on the model that `descent train SOURCE` (or, "
            "with --y, `descent fit CSV`) would train: the rate grows from --start-lr to "
            "--end-lr over --iterations batches, the loss is measured after each, and the "
            "model is put back. Prints named suggestions and writes lr_find.png. The same "
            "seed gives the same suggestion.",
        ),
        (
            "lr-sweep",
            "train K copies at K learning rates at once and compare them",
            "Trains one copy of the model per rate in --lrs, all at once as one vectorised "
            "computation over the same batches, for --epochs epochs; reports each rate's "
            "final and best loss, marks the ones that diverge, picks the best, and writes "
            "sweep.png.",
        ),
    ):
        lp = sub.add_parser(name, parents=[common], help=help_text, description=desc)
        lp.add_argument("source", help="what train takes (e.g. mnist-sample), or a CSV with --y")
        lp.add_argument("--model", help="linear or mlp; with --y, the formula to fit")
        lp.add_argument("--y", help="fit mode: the column to fit (as in `descent fit`)")
        lp.add_argument("--x", action="append", help="fit mode: an input column")
        lp.add_argument("--init", help="fit mode: starting values, e.g. a=1,b=0")
        lp.add_argument("--classes", help="train mode: labels to keep, e.g. 3,7")
        lp.add_argument("--hidden", type=int, help="train mode: hidden units of the mlp")
        lp.add_argument("--loss", choices=CLASSIFIER_LOSSES)
        lp.add_argument(
            "--optimizer",
            choices=OPTIMIZERS,
            help=f"default: train's {default(TrainConfig, 'optimizer')}; fit's sgd "
            "(lm has no learning rate)",
        )
        lp.add_argument("--momentum", type=float, help="SGD momentum (default: 0)")
        lp.add_argument(
            "--batch-size",
            type=int,
            help=f"train mode (default: {default(TrainConfig, 'batch_size')})",
        )
        lp.add_argument("--valid-pct", type=float, help="validation share")
        lp.add_argument("--seed", type=int, help="split, initial weights and batch order")
        lp.add_argument("--no-deskew", dest="deskew", action="store_false", default=None)
        lp.add_argument("--no-scale", dest="scale", action="store_false", default=None)
        add_output_options(lp, name, json=False)
        if name == "lr-find":
            lp.add_argument(
                "--start-lr", type=float, default=LR_FIND_START, help=f"default: {LR_FIND_START:g}"
            )
            lp.add_argument(
                "--end-lr", type=float, default=LR_FIND_END, help=f"default: {LR_FIND_END:g}"
            )
            lp.add_argument(
                "--iterations", type=int, default=LR_FIND_STEPS, help=f"default: {LR_FIND_STEPS}"
            )
            lp.set_defaults(run=run_lr_find)
        else:
            lp.add_argument(
                "--lrs",
                default=LR_SWEEP_RATES,
                help="LO:HI:K, K rates log-spaced from LO to HI, or a list 0.01,0.1,1 "
                f"(default: {LR_SWEEP_RATES})",
            )
            lp.add_argument(
                "--epochs", type=int, default=LR_SWEEP_EPOCHS, help=f"default: {LR_SWEEP_EPOCHS}"
            )
            add_watch_options(lp, tensorboard=False)
            lp.set_defaults(run=run_lr_sweep)
        add_device_options(lp)


def lr_tool_config(args: argparse.Namespace):
    """A TrainConfig (or, with --y, a FitConfig) from lr-find / lr-sweep options."""
    from dataclasses import fields

    from descent.errors import ConfigError

    if args.y is not None:
        if not args.model:
            raise ConfigError("fit mode (--y given) needs --model with the formula to fit")
        names = [f.name for f in fields(FitConfig)]
        given = given_options(args, [n for n in names if n not in ("data", "quiet", "out", "y")])
        if "init" in given:
            given["init"] = parse_init(given["init"])
        given.setdefault("optimizer", "sgd")
        return FitConfig(data=args.source, y=args.y, quiet=args.quiet, **given)
    for opt in ("x", "init"):
        if getattr(args, opt) is not None:
            raise ConfigError(f"--{opt} is for fit mode (with --y); train mode takes images")
    names = [f.name for f in fields(TrainConfig)]
    given = given_options(args, [n for n in names if n not in ("source", "quiet", "out", "epochs")])
    if "classes" in given:
        given["classes"] = [c.strip() for c in given["classes"].split(",") if c.strip()]
    return TrainConfig(source=args.source, quiet=args.quiet, **given)


def run_lr_find(args: argparse.Namespace) -> int:
    from descent.commands.lr_tools import lr_find_command

    lr_find_command(
        lr_tool_config(args),
        start_lr=args.start_lr,
        end_lr=args.end_lr,
        steps=args.iterations,
        out=args.out,
        overwrite=args.overwrite,
    )
    return ExitStatus.SUCCESS


def run_lr_sweep(args: argparse.Namespace) -> int:
    from descent.commands.lr_tools import lr_sweep_command
    from descent.tuning.sweep import parse_lrs

    lrs = parse_lrs(args.lrs)
    cfg = lr_tool_config(args)
    with watching(args) as watch:
        done = lr_sweep_command(
            cfg, lrs, epochs=args.epochs, out=args.out, overwrite=args.overwrite, watch=watch
        )
    # Stopped from the page: as a fit interrupted by Ctrl-C
    return ExitStatus.SIGINT if done.sweep.stopped == "interrupted" else ExitStatus.SUCCESS
