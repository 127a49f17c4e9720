"""`descent fit`: its options and how they become one command call."""

from __future__ import annotations

import argparse

from descent.cli.common import (
    ExitStatus,
    add_checkpoint_options,
    add_device_options,
    add_output_options,
    add_schedule_option,
    add_watch_options,
    default,
    exit_status,
    given_options,
    lr_value,
    parse_init,
    tensorboard,
    watching,
)
from descent.commands.config import FitConfig
from descent.options import CI_METHODS, FIT_DEFAULT_LR, FIT_SOLVERS, check_group_options


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    fit = sub.add_parser(
        "fit",
        parents=[common],
        help="fit a formula to columns of a CSV/TSV file",
        description=(
            "Fits a formula to measured data by minimising the mean squared error, with "
            "every step visible. Names in the formula that are columns of the file are "
            "inputs; every other name is a parameter. Prints the parameters with standard "
            "errors, RSS and R², and writes a run directory with plots."
        ),
        epilog=(
            'Example: descent fit data.csv --model "b1*(1-exp(-b2*x))" --y y --init b1=500,b2=1e-4'
        ),
    )
    fit.add_argument("data", help="a CSV or TSV file with a header row")
    fit.add_argument("--model", required=True, help='the formula, e.g. "a*t**2 + b*t + c"')
    fit.add_argument("--y", required=True, help="the column to fit")
    fit.add_argument(
        "--x", action="append", help="an input column (repeatable; default: from the formula)"
    )
    fit.add_argument("--init", help="starting values, e.g. b1=500,b2=1e-4 (default: all 1)")
    fit.add_argument(
        "--optimizer", choices=FIT_SOLVERS, help=f"default: {default(FitConfig, 'optimizer')}"
    )
    own = ", ".join(f"{k} {v:g}" for k, v in FIT_DEFAULT_LR.items() if k != "adamw")
    fit.add_argument(
        "--lr",
        type=lr_value,
        help=f"learning rate ({own}), or auto to run lr-find first; "
        "with no --optimizer, --lr means --optimizer sgd",
    )
    add_schedule_option(fit)
    fit.add_argument("--momentum", type=float, help="SGD momentum (default: 0)")
    fit.add_argument(
        "--epochs", type=int, help=f"the most steps (default: {default(FitConfig, 'epochs')})"
    )
    fit.add_argument(
        "--no-scale",
        dest="scale",
        action="store_false",
        default=None,
        help="do not whiten parameters for sgd/adam/lbfgs (the book's raw behaviour)",
    )
    add_statistics_options(fit)
    fit.add_argument(
        "--drop-missing",
        action="store_true",
        default=None,
        help="drop rows with missing values instead of stopping",
    )
    fit.add_argument(
        "--valid-pct",
        type=float,
        help=f"hold out this share of rows (default: {default(FitConfig, 'valid_pct')})",
    )
    fit.add_argument(
        "--seed",
        type=int,
        help=f"seed of the held-out split (default: {default(FitConfig, 'seed')})",
    )
    add_checkpoint_options(fit, FitConfig)
    add_output_options(fit, "fit")
    add_watch_options(fit)
    fit.add_argument("--animate", metavar="GIF", help="write an animation of the fit, e.g. fit.gif")
    fit.add_argument(
        "--no-plots",
        dest="plots",
        action="store_false",
        default=None,
        help="skip the PNG plots (faster for many fits)",
    )
    fit.set_defaults(run=run_fit)


def add_statistics_options(fit: argparse.ArgumentParser) -> None:
    """Weights, bounds, fixed parameters, intervals and groups (fitting/)."""
    fit.add_argument(
        "--sigma",
        metavar="COL",
        help="a column of each row's standard uncertainty: the fit minimises chi-square "
        "(default: every row weighs the same)",
    )
    fit.add_argument(
        "--absolute-sigma",
        action="store_true",
        default=None,
        help="the sigmas are absolute: do not scale the covariance by the reduced "
        "chi-square (curve_fit's absolute_sigma=True)",
    )
    fit.add_argument(
        "--bounds",
        action="append",
        metavar="NAME=LO:HI",
        help="keep a parameter in [LO, HI] (inf allowed; repeatable, or a comma list "
        "such as a=0:inf,k=0.5:2); needs --optimizer lm",
    )
    fit.add_argument(
        "--fix",
        action="append",
        metavar="NAME=VALUE",
        help="hold a parameter at a value (repeatable, or a comma list); it is not "
        "counted in the degrees of freedom",
    )
    fit.add_argument(
        "--ci",
        choices=CI_METHODS,
        help="t: intervals at 68.3%% and 95%% from the t distribution; profile: also "
        f"profile-likelihood intervals (default: {default(FitConfig, 'ci')})",
    )
    fit.add_argument(
        "--by",
        metavar="COL",
        help="fit the formula to every group of rows sharing a value of COL, all at "
        "once; writes groups.csv",
    )
    add_device_options(fit)


def run_fit(args: argparse.Namespace) -> int:
    from dataclasses import fields, replace

    from descent.commands.fit import fit_command

    names = [f.name for f in fields(FitConfig) if f.name not in ("data", "quiet")]
    given = given_options(args, names)
    if "init" in given:
        given["init"] = parse_init(given["init"])
    if "lr" in given and "optimizer" not in given:
        # Levenberg-Marquardt, the default, takes no learning rate: asking for one
        # asks for gradient descent.
        given["optimizer"] = "sgd"
        if not args.quiet:
            print("--lr given without --optimizer: fitting by gradient descent (sgd)")
    cfg = replace(FitConfig(data=args.data, quiet=args.quiet), **given)
    if cfg.by is not None:
        from descent.commands.fit_groups import fit_groups_command

        # no loop, so no epochs to log: refused like the options in BY_REFUSES
        check_group_options(cfg.by, {"tensorboard": args.tensorboard})

        with watching(args) as watch:
            groups = fit_groups_command(cfg, overwrite=args.overwrite, watch=watch)
        stopped = groups.interrupted_by or groups.finish_signal
        if stopped is None:
            return ExitStatus.SUCCESS
        return ExitStatus.SIGTERM if stopped == "SIGTERM" else ExitStatus.SIGINT
    with watching(args) as watch, tensorboard(args) as board:
        result = fit_command(cfg, overwrite=args.overwrite, watch=watch, callbacks=board)
    return exit_status(result.fit_result, result.finish_signal)
