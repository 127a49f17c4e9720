"""What several commands' parsers share: option helpers, value parsers, the exit
status of a fit, and ExitStatus. Nothing here imports torch."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator, Sequence
from enum import IntEnum
from typing import Any

from descent.commands.config import TrainConfig, default_of
from descent.core.events import StopReason
from descent.distributed.process import Process
from descent.errors import ConfigError
from descent.options import OPTIMIZERS, SCHEDULES, check_device


class ExitStatus(IntEnum):
    """The exit statuses of `descent`, each with its reason."""

    SUCCESS = 0  # done
    ERROR = 1  # an unexpected error (a bug: the traceback is printed)
    BAD_INPUT = 2  # bad input or options: the message says which and what would work
    SIGINT = 130  # 128 + 2: interrupted by Ctrl-C; a checkpoint was written
    SIGTERM = 143  # 128 + 15: stopped by SIGTERM; a checkpoint was written


def default(cls: type, name: str) -> str:
    """A config field's default as the help text shows it."""
    value = default_of(cls, name)
    return f"{value:g}" if isinstance(value, float) else str(value)


def lr_value(text: str) -> float | str:
    """--lr: a positive number, or auto (the finder's suggestion)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a learning rate: give a number such as 0.01, or auto"
        ) from None


def add_optim_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--optimizer", choices=OPTIMIZERS, help=f"default: {default(TrainConfig, 'optimizer')}"
    )
    p.add_argument(
        "--lr",
        type=lr_value,
        help=f"learning rate, or auto to run lr-find first (default: {default(TrainConfig, 'lr')})",
    )
    p.add_argument("--momentum", type=float, help="SGD momentum (default: 0)")
    p.add_argument("--weight-decay", type=float, help="L2 penalty (default: 0)")


def add_schedule_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--schedule",
        choices=SCHEDULES,
        help="how the learning rate changes: one-cycle (fastai's), cosine, step (/10 at "
        "1/3 and 2/3), plateau (/10 when valid_loss stalls) (default: constant)",
    )


def add_checkpoint_options(p: argparse.ArgumentParser, cls: type) -> None:
    p.add_argument(
        "--checkpoint-every",
        metavar="N[steps]",
        help=f"write a checkpoint every N epochs, or N steps with 'Nsteps'; 0 = only on "
        f"Ctrl-C / SIGTERM and at the end (default: {default(cls, 'checkpoint_every')})",
    )
    p.add_argument(
        "--keep",
        type=int,
        help=f"checkpoints to keep besides the best (default: {default(cls, 'keep')})",
    )


def add_device_options(p: argparse.ArgumentParser, nproc: bool = False) -> None:
    """--device and --threads (and, for train, --nproc: several processes via torchrun)."""
    p.add_argument(
        "--device",
        type=check_device_option,
        help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps (default: auto)",
    )
    p.add_argument(
        "--threads",
        type=int,
        help="CPU threads for torch (default: the cores this process may use, shared "
        "among the run's processes on this machine)",
    )
    if nproc:
        p.add_argument(
            "--nproc",
            type=int,
            help="train on N processes of this machine, data-parallel: starts torchrun "
            "(python -m torch.distributed.run --standalone --nproc-per-node N)",
        )


def check_device_option(text: str) -> str:
    try:
        return check_device(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("unknown --device ")) from None


def add_watch_options(p: argparse.ArgumentParser, tensorboard: bool = True) -> None:
    """--watch [--port P] [--host H] (the live page) and --tensorboard DIR."""
    p.add_argument(
        "--watch",
        action="store_true",
        help="serve a live page of the run (curves, weights or the fitted curve, a Stop "
        "button) and print its address",
    )
    p.add_argument("--port", type=int, default=0, help="the page's port (default: a free one)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address the page listens on (default 127.0.0.1, this machine only; "
        "anything else is reachable from other machines and prints a warning)",
    )
    if tensorboard:
        p.add_argument(
            "--tensorboard",
            metavar="DIR",
            help="also write TensorBoard event files to DIR (scalars, lr, weight images, "
            "histograms; needs pip install 'descent[tensorboard]')",
        )


@contextlib.contextmanager
def watching(args: argparse.Namespace) -> Iterator[Any]:
    """The command's WatchSession while it runs (--watch), or None (also on torchrun's
    processes other than rank 0: one page, fed by the one that prints)."""
    if not getattr(args, "watch", False):
        given = [f"--{o}" for o, off in (("port", 0), ("host", "127.0.0.1"))
                 if getattr(args, o, off) != off]  # fmt: skip
        if given:  # silently unused, a typo'd port would go unnoticed
            raise ConfigError(f"{' and '.join(given)} set the live page's address: add --watch")
    if not getattr(args, "watch", False) or not Process.from_env().is_main:
        yield None
        return
    from descent.watch.session import WatchSession

    with WatchSession(host=args.host, port=args.port) as session:
        yield session


@contextlib.contextmanager
def tensorboard(args: argparse.Namespace) -> Iterator[list]:
    """The callbacks of --tensorboard DIR (none without it, or on a process other than
    rank 0); the writer is closed after."""
    if getattr(args, "tensorboard", None) is None or not Process.from_env().is_main:
        yield []
        return
    from descent.callbacks.tensorboard import TensorBoard
    from descent.commands.runs import check_outside_run

    check_outside_run(args.tensorboard, "--tensorboard", getattr(args, "out", None))
    check_outside_run(args.tensorboard, "--tensorboard", getattr(args, "run_dir", None))
    board = TensorBoard(args.tensorboard)
    try:
        yield [board]
    finally:
        board.close()


def given_options(args: argparse.Namespace, names: Sequence[str]) -> dict:
    """The options the user actually gave (argparse defaults are None)."""
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def parse_init(text: str) -> dict[str, float]:
    """'b1=500,b2=1e-4' -> {'b1': 500.0, 'b2': 0.0001}."""
    values: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            raise ConfigError(
                f"--init {text!r}: write name=value pairs, e.g. --init b1=500,b2=1e-4"
            )
        try:
            values[name] = float(value)
        except ValueError:
            raise ConfigError(f"--init {name}={value!r}: {value!r} is not a number") from None
    return values


def exit_status(result, finish_signal: str | None = None) -> ExitStatus:
    """SUCCESS, or SIGINT / SIGTERM when a signal interrupted the fit (FitResult) or,
    after it, the writing of the run's files (`finish_signal`)."""
    if result.stopped == StopReason.INTERRUPTED:  # Ctrl-C, SIGTERM or the page's Stop
        signal = result.signal
    elif finish_signal is not None:
        signal = finish_signal
    else:
        return ExitStatus.SUCCESS
    return ExitStatus.SIGTERM if signal == "SIGTERM" else ExitStatus.SIGINT


def add_output_options(p: argparse.ArgumentParser, command: str, json: bool = True) -> None:
    """--out (a new or empty folder), --overwrite and, if `json`, --json."""
    p.add_argument("--out", help=f"run directory, new or empty (default: runs/{command}-<time>)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a previous descent run in --out (its files only; never other files)",
    )
    if json:
        p.add_argument("--json", help="also write the summary to this JSON file")
