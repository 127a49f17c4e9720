"""Every default of every command, once, with the reason beside it.

The CLI fills these dataclasses from its options (and prints their defaults in its
help); the commands take them; `config.json` in a run directory is
`dataclasses.asdict` of one of them, which is everything needed to repeat the run.
Choices and bounds live in descent/options.py, and `check_options` applies them.
No torch here: `descent --help` reads this module.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import ClassVar

from descent.errors import ConfigError
from descent.options import (
    AT_LEAST,
    AT_MOST,
    BY_REFUSES,
    CI_METHODS,
    CLASSIFIER_LOSSES,
    DISTANCES,
    IMAGE_MODELS,
    OPTIMIZERS,
    check_bounds,
    check_choice,
    check_device,
    check_fit_options,
    check_group_options,
    check_lr,
    check_momentum,
    check_schedule,
    check_valid_pct,
    parse_every,
)


@dataclass
class DemoConfig:
    out: str = "runs/demo"
    # The data's noise and the book's randn(3) start both come from this seed.
    seed: int = 42
    # The book's own settings for its first run: plain SGD, lr 1e-5, 10 steps.
    book_lr: float = 1e-5
    book_steps: int = 10
    # The converged fit: gradient descent on standardised time at lr = 1 / (largest
    # curvature), the largest step that cannot overshoot along any direction.
    # 10,000 epochs is far more than the ~200 it needs; the bound only guards.
    max_epochs: int = 10_000
    # Converged when the loss changes by less than 1e-12 (relative) over 10
    # epochs: float64 resolves it, and the fit is then exact to ~6 digits.
    rtol: float = 1e-12
    window: int = 10
    quiet: bool = False

    def to_dict(self) -> dict:
        return {"command": "demo", **asdict(self)}


@dataclass
class TrainConfig:
    """`descent train`: an image classifier by per-pixel weights (or a small net)."""

    source: str = "mnist-sample"
    classes: list[str] | None = None  # None: every label in the source
    # linear: one weight per pixel per class (the book's idea); mlp: 784 -> hidden -> k.
    model: str = "linear"
    # The book's simple_net uses 30; 100 units reach ~0.95 on the ten digits.
    hidden: int = 100
    # --model mean, and the baseline printed beside linear and mlp runs: l1 is the book's
    # mnist_distance (the mean absolute pixel difference); l2 the root mean squared one.
    distance: str = "l1"
    # auto: one output with BCE for two classes, k outputs with cross-entropy for more.
    # "mnist" is the book's sigmoid loss (two classes).
    loss: str = "auto"
    # Adam at 3e-3 with batches of 128 trains both models in 10-25 epochs on the
    # bundled sample with no tuning; SGD needs its lr matched to the loss's curvature.
    optimizer: str = "adam"
    # A number, or "auto": run the learning-rate finder first (lr_find.py) and train
    # at its suggestion; config.json then holds the rate and `lr_found` says why.
    lr: float | str = 3e-3
    lr_found: str | None = None
    # constant, one-cycle, cosine, step or plateau (schedules.py).
    schedule: str = "constant"
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 128
    # The most epochs. None: 300 when early stopping is on, 30 when it is off. Early
    # stopping on valid_loss ends a linear run long before 300 on most data (the bundled
    # sample after 25-35 epochs), but on small sets a linear model needs the steps:
    # scikit-learn's 8x8 digits (12 batches an epoch) settle after ~260 epochs, and at
    # 30 they were 3 points below LogisticRegression (bench/defaults_vs_logreg.py).
    # Without early stopping (--patience 0, one-cycle, cosine) the budget is the run.
    epochs: int | None = None
    EPOCHS_EARLY_STOPPING: ClassVar[int] = 300
    EPOCHS_NO_EARLY_STOPPING: ClassVar[int] = 30
    # Train for this many optimizer steps instead (epochs = ceil(steps / batches)).
    steps: int | None = None
    # Early stopping on valid_loss, restoring the best epoch; 0 turns it off. None: 5,
    # but off under a one-cycle or cosine schedule, which (as fastai's fit_one_cycle)
    # is meant to run its whole course: its loss falls late, when the rate anneals.
    patience: int | None = None
    DEFAULT_PATIENCE: ClassVar[int] = 5
    valid_pct: float = 0.2  # used only when the source has no validation set
    seed: int = 0  # the split, the initial weights and the batch order
    # Straighten each image (centre of mass to the centre, principal axis vertical)
    # before training and prediction: +2-40 points for the linear model on every digits
    # set tried, but it erases slant and position where they are the label. "auto"
    # decides on the validation images (data/deskew_choice.py); config.json then holds
    # the decision and `deskew_found` says why. True / False force it.
    deskew: bool | str = "auto"
    deskew_found: str | None = None
    # Initial weights ~ N(0, init_std); 0 starts the linear model from zeros.
    init_std: float = 0.0
    # Step 4 for these models and losses is by hand (core/fused.py): autograd's gradient to
    # float rounding, without building a graph each batch. True: autograd, loss.backward().
    autograd: bool = False
    out: str | None = None  # None: runs/train-<time>
    json: str | None = None
    # A checkpoint every epoch ("1"), every N steps ("200steps"), or none ("0"); one
    # is always written on Ctrl-C / SIGTERM and at the end. An epoch of these small
    # models costs far more than writing their state.
    checkpoint_every: str = "1"
    keep: int = 3  # checkpoints kept (the newest), besides the best epoch's
    # auto: CUDA, then MPS, then the CPU (distributed/devices.py). Files are device-free.
    device: str = "auto"
    # CPU threads for torch. None: the cores this process may use, shared among the
    # run's processes on this machine, with OpenMP's idle threads asleep (measured in
    # bench/threads.py: spinning threads made small runs 10-30x slower on a busy machine).
    threads: int | None = None
    # How many processes trained (torchrun's WORLD_SIZE), recorded; each took its share
    # of every global batch of batch_size.
    world_size: int = 1
    quiet: bool = False

    def early_stopping_patience(self) -> int:
        if self.patience is not None:
            return self.patience
        return 0 if self.schedule in ("one-cycle", "cosine") else self.DEFAULT_PATIENCE

    def max_epochs(self) -> int:
        if self.epochs is not None:
            return self.epochs
        if self.early_stopping_patience() > 0:
            return self.EPOCHS_EARLY_STOPPING
        return self.EPOCHS_NO_EARLY_STOPPING

    def to_dict(self) -> dict:
        return {"command": "train", **asdict(self)}


# The book's recipe for 3 vs 7 (fastbook ch. 4): linear, its sigmoid loss, plain
# SGD at lr 1.0, batches of 256, weights from randn, raw pixels, and 20 epochs of
# its 12,396 images = 20 x 49 = 980 steps. Counting steps, not epochs, gives the
# book's accuracy curve on a smaller set such as the bundled sample.
BOOK_RECIPE = {
    "model": "linear",
    "loss": "mnist",
    "optimizer": "sgd",
    "lr": 1.0,
    "momentum": 0.0,
    "batch_size": 256,
    "steps": 980,
    "patience": 0,
    "deskew": False,
    "init_std": 1.0,
}


@dataclass
class FitConfig:
    """`descent fit`: a formula fitted to columns of a CSV by minimising the MSE."""

    data: str = ""
    model: str = ""  # the formula, e.g. "b1*(1-exp(-b2*x))"
    y: str = ""
    # Input columns; None: every name in the formula that is a column of the file.
    x: list[str] | None = None
    # Starting values {name: value}; None starts every parameter at 1.0 (as curve_fit).
    init: dict[str, float] | None = None
    # lm: Levenberg-Marquardt on the residuals' Jacobian. It reaches NIST's certified
    # values from both starting points of all 27 StRD problems (bench/nist_fit.py);
    # sgd, adam and lbfgs (torch.optim) are there to watch and compare.
    optimizer: str = "lm"
    # None: the optimizer's own default (sgd 0.5, adam 1, lbfgs 1; lm takes none);
    # "auto": the learning-rate finder's suggestion (lr_found says what it saw).
    lr: float | str | None = None
    lr_found: str | None = None
    # constant, one-cycle, cosine, step or plateau (sgd, adam and lbfgs only).
    schedule: str = "constant"
    momentum: float = 0.0
    # The most steps; MGH10 from NIST's first start needs ~7,600 LM steps.
    epochs: int = 10_000
    # Whiten the parameters for sgd/adam/lbfgs (b = b0 + T z, T from the Jacobian at
    # the start, so the curvature is ~1 in every direction): one learning rate then
    # suits parameters of 500 and of 1e-4, and correlated ones. LM scales itself
    # (MINPACK's column norms). --no-scale gives the book's raw behaviour.
    scale: bool = True
    # A column of each row's standard uncertainty: residuals are divided by it, so the
    # fit minimises chi-square (curve_fit's sigma). None: every row weighs the same.
    sigma: str | None = None
    # The sigmas are absolute: covariance = (J^T J)^-1 as is. Otherwise it is scaled by
    # the reduced chi-square (curve_fit's default, lmfit's scale_covar=True): only the
    # sigmas' ratios then matter.
    absolute_sigma: bool = False
    # ["a=0:inf", "k=0.5:2"]: each parameter kept in its range (LO or HI may be inf).
    bounds: list[str] | None = None
    # ["c=0.5"]: held at that value (lmfit's vary=False), not counted in the dof.
    fix: list[str] | None = None
    # t: intervals b -+ t * stderr at 68.3 % and 95 % (cheap, symmetric); profile also
    # profiles chi-square (lmfit's conf_interval): honest when the model is curved, at
    # a few dozen refits per parameter.
    ci: str = "t"
    # A column naming groups: the formula is fitted to each group's rows, all groups at
    # once (one vectorised Levenberg-Marquardt); results go to groups.csv.
    by: str | None = None
    drop_missing: bool = False
    valid_pct: float = 0.0  # a fit uses every row unless asked to hold some out
    seed: int = 0
    out: str | None = None  # None: runs/fit-<time>
    json: str | None = None
    animate: str | None = None  # a .gif of the curve moving toward the data
    plots: bool = True  # matplotlib takes longer than most fits: off for batch work
    # Fits take milliseconds a step: by default a checkpoint only on Ctrl-C / SIGTERM
    # and at the end; "100" every 100 steps (for fits, epochs and steps coincide).
    checkpoint_every: str = "0"
    keep: int = 3
    device: str = "auto"  # as TrainConfig's; a fit's statistics are float64
    threads: int | None = None  # as TrainConfig's
    quiet: bool = False

    def to_dict(self) -> dict:
        return {"command": "fit", **asdict(self)}


@dataclass
class GradConfig:
    """`descent grad`: the value and gradient of a formula at a point (core/gradients.py)."""

    formula: str = ""  # the same AST whitelist as `descent fit`
    # The point: name -> a number, or a list of numbers (the book's rank-1 tensor).
    at: dict[str, float | list[float]] = field(default_factory=dict)
    # Report the sum of a rank-1 result as the value (the book's (x**2).sum()); the
    # gradient of a vector is always that of its sum.
    sum: bool = False
    # A CSV/TSV: the value is the MSE of the formula against its target column, and the
    # gradient is the loop's step 4 for those parameters.
    data: str | None = None
    y: str | None = None  # the target column; None: the one column the formula does not use
    plot: str | None = None  # a PNG of the function and its tangent
    PLOT_FILE: ClassVar[str] = "grad.png"  # what --plot with no file writes
    var: str | None = None  # the variable plotted; None: the first
    json: str | None = None
    quiet: bool = False


def default_of(cls: type, name: str) -> object:
    """A config field's default, for the CLI's help text."""
    for f in fields(cls):
        if f.name == name:
            return f.default if f.default is not MISSING else f.default_factory()
    raise KeyError(name)


def check_options(cfg: TrainConfig | FitConfig) -> None:
    """Refuse option values that cannot work before anything is read or written, so a
    bad option leaves no run folder behind. Each message names the option."""
    if cfg.lr is not None:
        check_lr(cfg.lr, auto=True)
    for name in AT_LEAST.keys() | AT_MOST.keys():
        value = getattr(cfg, name, None)
        if value is not None:
            check_bounds(name, value)
    check_valid_pct(cfg.valid_pct)
    if getattr(cfg, "device", None) is not None:
        check_device(cfg.device, float64=isinstance(cfg, FitConfig))
    parse_every(cfg.checkpoint_every)
    check_schedule(cfg.schedule)
    if isinstance(cfg, FitConfig):
        check_fit_options(
            cfg.optimizer,
            cfg.lr,
            cfg.momentum,
            cfg.schedule,
            weighted=cfg.sigma is not None,
            bounded=bool(cfg.bounds),
        )
        check_choice("--ci", cfg.ci, CI_METHODS)
        if cfg.absolute_sigma and cfg.sigma is None:
            raise ConfigError("--absolute-sigma says how to read --sigma COL: give --sigma too")
        check_group_options(cfg.by, {k: getattr(cfg, k) for k in BY_REFUSES})
    else:
        check_choice("--model", cfg.model, IMAGE_MODELS)
        check_choice("--loss", cfg.loss, CLASSIFIER_LOSSES)
        check_choice("--optimizer", cfg.optimizer, OPTIMIZERS)
        check_momentum(cfg.optimizer, cfg.momentum)
        check_choice("--distance", cfg.distance, DISTANCES)
        if cfg.deskew not in (True, False, "auto"):
            raise ConfigError(f"deskew must be true, false or auto, got {cfg.deskew!r}")
