"""Every choice list and every numeric bound of an option, once, without torch.

The CLI's choices and help, `commands.config.check_options` and the library's own
checks (make_optimizer, Batches, Checkpointer, ...) all read them here, so a bound
or a name is changed in one place. Importing this module imports no torch, so
`descent --help` and a bad option are answered at once.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from descent.errors import ConfigError

OPTIMIZERS = ("sgd", "adam", "adamw", "lbfgs")  # torch.optim by name (core/optim.py)
FIT_SOLVERS = ("lm", *OPTIMIZERS)  # `descent fit`: Levenberg-Marquardt, or gradient descent
SWEEP_OPTIMIZERS = ("sgd", "adam", "adamw")  # lr-sweep: their step direction ignores lr
LOSSES = ("mse", "mae", "mnist", "bce", "cross_entropy")  # core/losses.py
CLASSIFIER_LOSSES = ("auto", "mnist", "bce", "cross_entropy")  # auto: bce for 2 classes
ONE_OUTPUT_LOSSES = ("mnist", "bce")  # one score per image: exactly two classes
METRICS = ("rmse", "r2", "accuracy")  # core/metrics.py
# per-pixel weights, a small net, or the book's pixel-similarity baseline (nothing learned)
IMAGE_MODELS = ("linear", "mlp", "mean")
DISTANCES = ("l1", "l2")  # --model mean: mean absolute / root mean squared pixel difference
SCHEDULES = ("constant", "one-cycle", "cosine", "step", "plateau")  # callbacks/schedules.py
# The learning-rate finder's range and length (tuning/lr_find.py), as fastai's lr_find.
LR_FIND_START, LR_FIND_END, LR_FIND_STEPS = 1e-7, 10.0, 100
# lr-sweep's rates (LO:HI:K, K log-spaced) and epochs when none are given (tuning/sweep.py).
LR_SWEEP_RATES, LR_SWEEP_EPOCHS = "1e-4:1:16", 3
# Confidence intervals of a fit (fitting/statistics.py, fitting/profile.py): "t" gives
# b -+ t_ppf * stderr at 68.3 % and 95 %; "profile" adds profile-likelihood intervals.
CI_METHODS = ("t", "profile")
# A fit's learning rate when none is given. Its parameters are whitened (fitting/scaled.py),
# so the curvature is ~1 in every direction: sgd is stable below 2.
FIT_DEFAULT_LR = {"sgd": 0.5, "adam": 1.0, "adamw": 1.0, "lbfgs": 1.0}
# `descent watch --interval`: seconds between looks at the run folders (more often only
# spins on the files; less often than hourly is not watching).
WATCH_INTERVAL = (0.1, 3600.0)

# option -> the smallest value it may take; None-valued (absent) options are skipped.
AT_LEAST: dict[str, float] = {
    "epochs": 1,
    "steps": 1,
    "batch_size": 1,
    "hidden": 1,
    "keep": 1,
    "patience": 0,  # 0 = off
    "momentum": 0.0,
    "weight_decay": 0.0,
    "init_std": 0.0,
    "min_delta": 0.0,
    "seed": 0,
    "iterations": 5,  # lr-find: fewer steps cannot show a curve
    "threads": 1,
    "nproc": 1,
}
# option -> the largest value it may take: far beyond any useful run, so a typo (an extra
# zero or three) is refused at once instead of running for days or allocating for hours.
# Memory is checked separately, from the model's sizes (io/limits.py).
AT_MOST: dict[str, float] = {
    "epochs": 1_000_000,
    "steps": 1_000_000_000,
    "batch_size": 2**31 - 1,
    "keep": 1_000,
    "patience": 1_000_000,
    "seed": 2**32 - 1,  # numpy's seed range; Batches seeds epoch e with seed * 1_000_003 + e
    "iterations": 100_000,  # lr-find steps
    "rates": 1_000,  # lr-sweep --lrs: K copies of the model train at once
    "threads": 1_024,
    "nproc": 1_024,  # processes on one machine (descent train --nproc)
}


def flag(name: str) -> str:
    """The command-line spelling of an option: batch_size -> --batch-size."""
    return "--" + name.replace("_", "-")


def finite_number(value: object) -> bool:
    """A real, finite int or float (not a bool, not a string)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_bounds(name: str, value: object) -> None:
    """ConfigError unless `value` is a finite number within AT_LEAST[name] and
    AT_MOST[name] (each bound applies when the option has one)."""
    low, high = AT_LEAST.get(name), AT_MOST.get(name)
    if not finite_number(value) or (low is not None and value < low):
        off = " (0 = off)" if name == "patience" else ""
        if low is None:
            raise ConfigError(f"{flag(name)} must be a number, got {value!r}")
        raise ConfigError(f"{flag(name)} must be at least {low:g}{off}, got {value!r}")
    if high is not None and value > high:
        raise ConfigError(f"{flag(name)} must be at most {high:,}, got {value:,}")


def check_lr(lr: object, auto: bool = False) -> None:
    """ConfigError unless lr is a positive finite number (or "auto" when allowed)."""
    if auto and lr == "auto":
        return
    if not (finite_number(lr) and lr > 0):
        what = (
            "a positive number" if isinstance(lr, (int, float)) or not auto else "a number or auto"
        )
        raise ConfigError(f"--lr must be {what}, got {lr!r}")


def check_valid_pct(value: float) -> None:
    if not (finite_number(value) and 0.0 <= value < 1.0):
        raise ConfigError(
            f"--valid-pct must be in [0, 1) (0.2 holds out a fifth of the rows), got {value}"
        )


DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")  # --device (distributed/devices.py)


def check_device(text: str, float64: bool = False) -> str:
    """--device: auto, cpu, cuda, cuda:N or mps (whether it exists is asked later); with
    `float64` (a curve fit: its steps and statistics are float64) not mps, which has no
    float64 arithmetic."""
    name = text.strip().lower() if isinstance(text, str) else text
    if not isinstance(name, str) or not re.fullmatch(r"auto|cpu|mps|cuda(:[0-9]{1,3})?", name):
        raise ConfigError(f"unknown --device {text!r}: choose one of {', '.join(DEVICES)}")
    if float64 and name == "mps":
        raise ConfigError(
            "--device mps: a fit computes in float64, which MPS does not; use --device cpu "
            "(or cuda)"
        )
    return name


def check_choice(option: str, value: str, choices: tuple[str, ...]) -> str:
    """`value` when it is one of `choices`, else a ConfigError listing them."""
    if value not in choices:
        raise ConfigError(f"unknown {option} {value!r}: choose one of {', '.join(choices)}")
    return value


@dataclass(frozen=True)
class Every:
    """How often to write a checkpoint: every `n` epochs or every `n` optimizer steps."""

    n: int
    unit: Literal["epochs", "steps"]


def parse_every(text: str | int | None) -> Every | None:
    """--checkpoint-every: '3' or 3 -> Every(3, 'epochs'); '200steps' -> Every(200, 'steps');
    None or '0' -> None (only on Ctrl-C / SIGTERM and at the end)."""
    if text is None:
        return None
    raw = str(text).strip().lower()
    unit = "steps" if raw.endswith(("steps", "step")) else "epochs"
    number = raw.removesuffix("steps").removesuffix("step").removesuffix("epochs")
    try:
        n = int(number.removesuffix("epoch"))
    except ValueError:
        raise ConfigError(
            f"--checkpoint-every {text!r}: give a number of epochs (e.g. 1) or of steps "
            "(e.g. 200steps)"
        ) from None
    if n < 0:
        raise ConfigError(f"--checkpoint-every must be 0 (off) or more, got {n}")
    return None if n == 0 else Every(n, unit)


def check_schedule(name: str) -> str:
    return check_choice("--schedule", name, SCHEDULES)


def check_momentum(optimizer: str, momentum: float) -> None:
    if momentum and optimizer != "sgd":
        raise ConfigError(f"--momentum is for --optimizer sgd, not {optimizer}")


def check_fit_options(
    optimizer: str,
    lr: float | str | None,
    momentum: float,
    schedule: str,
    *,
    weighted: bool = False,
    bounded: bool = False,
) -> None:
    """ConfigError for a combination of curve-fitting solver options that cannot work.

    Weights (--sigma) and bounds (--bounds) need Levenberg-Marquardt: gradient descent
    minimises the plain mean squared error, and a clipped gradient step is no bounded
    least-squares solver; descent refuses rather than answer approximately."""
    check_choice("--optimizer", optimizer, FIT_SOLVERS)
    for given, option in ((weighted, "--sigma"), (bounded, "--bounds")):
        if given and optimizer != "lm":
            raise ConfigError(
                f"{option} needs --optimizer lm (the default): --optimizer {optimizer} "
                "minimises the unweighted mean squared error without bounds; drop "
                f"{option}, or fit with lm"
            )
    if optimizer == "lm" and lr == "auto":
        raise ConfigError(
            "--lr auto finds a learning rate, and --optimizer lm takes none: "
            "use --optimizer sgd, adam or lbfgs with it"
        )
    if optimizer == "lm" and lr is not None:
        raise ConfigError(
            "--lr has no effect with --optimizer lm, which chooses its own steps; "
            "use --optimizer sgd, adam or lbfgs to set a learning rate"
        )
    check_momentum(optimizer, momentum)
    if check_schedule(schedule) != "constant" and optimizer == "lm":
        raise ConfigError(
            f"--schedule {schedule} changes a learning rate, and --optimizer lm has none: "
            "use it with --optimizer sgd, adam or lbfgs"
        )


def check_group_options(by: str | None, given: dict[str, object]) -> None:
    """ConfigError when --by (fitting/many.py: one vectorised Levenberg-Marquardt over
    every group) is combined with an option it cannot honour; `given` maps each option
    name to its value, and the ones that are set (not None, False, 0 or the default
    named in BY_REFUSES) are named."""
    if by is None:
        return
    clash = [flag(k) for k, v in given.items() if v not in (None, False, 0, BY_REFUSES.get(k))]
    if clash:
        raise ConfigError(
            f"--by {by} fits every group at once by one vectorised Levenberg-Marquardt, "
            f"which does not take {', '.join(clash)}; drop "
            f"{'it' if len(clash) == 1 else 'them'}, or fit one group at a time"
        )


# Options --by refuses, each with the value that means "not given".
BY_REFUSES: dict[str, object] = {
    "optimizer": "lm",
    "lr": None,
    "schedule": "constant",
    "momentum": 0.0,
    "valid_pct": 0.0,
    "animate": None,
    "ci": "t",
    "checkpoint_every": "0",
}


# Options of `descent train` that --model mean (the class means, computed in one pass:
# no loss, rate, batches or epochs) has no use for.
MEAN_REFUSES = (
    "hidden", "loss", "optimizer", "lr", "momentum", "weight_decay", "schedule", "batch_size",
    "epochs", "steps", "patience", "init_std", "autograd", "checkpoint_every", "keep", "book",
    "tensorboard",
)  # fmt: skip


def check_mean_options(model: str | None, given: dict[str, object]) -> None:
    """ConfigError when --model mean is given options of a trained model; `given` maps
    the options the user set (not None or False) to their values."""
    if model != "mean":
        return
    clash = [flag(k) for k in MEAN_REFUSES if given.get(k) not in (None, False)]
    if clash:
        raise ConfigError(
            f"--model mean computes each class's mean image in one pass and trains nothing, "
            f"so {', '.join(clash)} {'does' if len(clash) == 1 else 'do'} not apply: drop "
            f"{'it' if len(clash) == 1 else 'them'}, or train --model linear or mlp"
        )
