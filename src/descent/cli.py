"""The `descent` command. Thin: parse -> config -> one library call -> print / exit code.

Exit codes: 0 done; 1 unexpected error; 2 bad input or options (the message says
which and what would work); 130 interrupted by Ctrl-C; 143 by SIGTERM.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from descent import __version__
from descent.errors import DescentError

EXIT_INTERRUPT = {"SIGINT": 130, "SIGTERM": 143}


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad options with exit status 2 and a hint."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n(see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", "-q", action="store_true", help="print only the summary")
    common.add_argument("--debug", action="store_true", help="show tracebacks for errors")

    parser = _Parser(
        prog="descent",
        description=(
            "Train models by gradient descent and see every step: fit a formula to the "
            "columns of a CSV, or train a pixel classifier on images."
        ),
        epilog="Start with `descent demo`, then `descent explain` to see the loop.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"descent {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

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
    demo.add_argument("--out", default="runs/demo", help="run directory (default: runs/demo)")
    demo.add_argument(
        "--seed", type=int, default=42, help="seed for the data and the start (default: 42)"
    )
    demo.set_defaults(run=_run_demo)

    train = sub.add_parser(
        "train",
        parents=[common],
        help="train an image classifier (per-pixel weights or a small net)",
        description=(
            "Trains a classifier on images: one weight per pixel per class (--model linear, "
            "the book's idea) or a small neural net (--model mlp). SOURCE is 'mnist-sample' "
            "(5,000 bundled MNIST digits), a folder with train/<label>/ and valid/<label>/ "
            "(fastai's MNIST_SAMPLE), a folder of <label>/ folders, a folder of MNIST IDX "
            "files, or a .npz with x and y. Writes a run directory with the model, "
            "metrics.csv and plots."
        ),
        epilog="Example: descent train mnist-sample --classes 3,7",
    )
    train.add_argument("source", help="mnist-sample, an image folder, an IDX folder or a .npz")
    train.add_argument("--classes", help="comma-separated labels to keep, e.g. 3,7")
    train.add_argument("--model", choices=["linear", "mlp"], help="default: linear")
    train.add_argument("--hidden", type=int, help="hidden units of the mlp (default: 100)")
    train.add_argument(
        "--loss",
        choices=["auto", "mnist", "bce", "cross_entropy"],
        help="default auto: bce with one output for two classes, else cross_entropy",
    )
    _add_optim_options(train, "adam", "3e-3")
    _add_schedule_option(train)
    train.add_argument("--batch-size", type=int, help="default: 128")
    train.add_argument(
        "--epochs",
        type=int,
        help="the most epochs to train (default: 300 with early stopping, else 30)",
    )
    train.add_argument("--steps", type=int, help="train for this many steps instead of --epochs")
    train.add_argument(
        "--patience",
        type=int,
        help="early stopping patience on valid_loss, 0 = off "
        "(default: 5; off with --schedule one-cycle or cosine)",
    )
    train.add_argument(
        "--valid-pct", type=float, help="validation share when the source has none (default: 0.2)"
    )
    train.add_argument(
        "--seed", type=int, help="split, initial weights and batch order (default: 0)"
    )
    train.add_argument(
        "--no-deskew",
        dest="deskew",
        action="store_false",
        default=None,
        help="train on raw pixels (default: deskew if it helps a linear fit on the "
        "validation images)",
    )
    train.add_argument(
        "--deskew", dest="deskew", action="store_true", default=None, help="always deskew"
    )
    train.add_argument(
        "--init-std", type=float, help="initial weights ~ N(0, init_std) (default: 0)"
    )
    train.add_argument(
        "--book",
        action="store_true",
        help=(
            "the book's recipe: linear, mnist loss, SGD lr 1.0, batch 256, raw pixels, "
            "980 steps (the book's 20 epochs)"
        ),
    )
    _add_checkpoint_options(train, "1")
    train.add_argument("--out", help="run directory (default: runs/train-<time>)")
    train.add_argument("--json", help="also write the summary to this JSON file")
    train.set_defaults(run=_run_train)

    predict = sub.add_parser(
        "predict",
        parents=[common],
        help="predict labels of image files with a trained model",
        description="Loads RUN_DIR/model.safetensors + model.json and labels each image.",
    )
    predict.add_argument("run_dir", help="a run directory made by `descent train`")
    predict.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...)")
    predict.add_argument(
        "--resize", action="store_true", help="resize images of another size (default: refuse them)"
    )
    predict.add_argument("--json", help="also write the predictions to this JSON file")
    predict.set_defaults(run=_run_predict)

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
        "--optimizer", choices=["lm", "sgd", "adam", "adamw", "lbfgs"], help="default: lm"
    )
    fit.add_argument(
        "--lr",
        type=lr_value,
        help="learning rate (sgd 0.5, adam 1, lbfgs 1), or auto to run lr-find first; "
        "with no --optimizer, --lr means --optimizer sgd",
    )
    _add_schedule_option(fit)
    fit.add_argument("--momentum", type=float, help="SGD momentum (default: 0)")
    fit.add_argument("--epochs", type=int, help="the most steps (default: 10000)")
    fit.add_argument(
        "--no-scale",
        dest="scale",
        action="store_false",
        default=None,
        help="do not whiten parameters for sgd/adam/lbfgs (the book's raw behaviour)",
    )
    fit.add_argument(
        "--drop-missing",
        action="store_true",
        default=None,
        help="drop rows with missing values instead of stopping",
    )
    fit.add_argument("--valid-pct", type=float, help="hold out this share of rows (default: 0)")
    fit.add_argument("--seed", type=int, help="seed of the held-out split (default: 0)")
    _add_checkpoint_options(fit, "0")
    fit.add_argument("--out", help="run directory (default: runs/fit-<time>)")
    fit.add_argument("--json", help="also write the summary to this JSON file")
    fit.add_argument("--animate", metavar="GIF", help="write an animation of the fit, e.g. fit.gif")
    fit.add_argument(
        "--no-plots",
        dest="plots",
        action="store_false",
        default=None,
        help="skip the PNG plots (faster for many fits)",
    )
    fit.set_defaults(run=_run_fit)

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
        lp.add_argument("--loss", choices=["auto", "mnist", "bce", "cross_entropy"])
        lp.add_argument(
            "--optimizer",
            choices=["sgd", "adam", "adamw", "lbfgs"],
            help="default: train's adam; fit's sgd (lm has no learning rate)",
        )
        lp.add_argument("--momentum", type=float, help="SGD momentum (default: 0)")
        lp.add_argument("--batch-size", type=int, help="train mode (default: 128)")
        lp.add_argument("--valid-pct", type=float, help="validation share")
        lp.add_argument("--seed", type=int, help="split, initial weights and batch order")
        lp.add_argument("--no-deskew", dest="deskew", action="store_false", default=None)
        lp.add_argument("--no-scale", dest="scale", action="store_false", default=None)
        lp.add_argument("--out", help=f"output folder (default: runs/{name}-<time>)")
        if name == "lr-find":
            lp.add_argument("--start-lr", type=float, default=1e-7, help="default: 1e-7")
            lp.add_argument("--end-lr", type=float, default=10.0, help="default: 10")
            lp.add_argument("--iterations", type=int, default=100, help="default: 100")
            lp.set_defaults(run=_run_lr_find)
        else:
            lp.add_argument(
                "--lrs",
                default="1e-4:1:16",
                help="LO:HI:K, K rates log-spaced from LO to HI, or a list 0.01,0.1,1 "
                "(default: 1e-4:1:16)",
            )
            lp.add_argument("--epochs", type=int, default=3, help="default: 3")
            lp.set_defaults(run=_run_lr_sweep)

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
    resume.set_defaults(run=_run_resume)

    explain = sub.add_parser(
        "explain",
        parents=[common],
        help="print the seven-step training loop with its callbacks",
        description=(
            "Prints the loop that every descent command runs, "
            "with the callbacks attached to each event."
        ),
    )
    explain.set_defaults(run=_run_explain)
    return parser


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


def _add_optim_options(p: argparse.ArgumentParser, optimizer: str, lr: str) -> None:
    p.add_argument(
        "--optimizer", choices=["sgd", "adam", "adamw", "lbfgs"], help=f"default: {optimizer}"
    )
    p.add_argument(
        "--lr", type=lr_value, help=f"learning rate, or auto to run lr-find first (default: {lr})"
    )
    p.add_argument("--momentum", type=float, help="SGD momentum (default: 0)")
    p.add_argument("--weight-decay", type=float, help="L2 penalty (default: 0)")


def _add_schedule_option(p: argparse.ArgumentParser) -> None:
    from descent.config import SCHEDULES

    p.add_argument(
        "--schedule",
        choices=SCHEDULES,
        help="how the learning rate changes: one-cycle (fastai's), cosine, step (/10 at "
        "1/3 and 2/3), plateau (/10 when valid_loss stalls) (default: constant)",
    )


def _add_checkpoint_options(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument(
        "--checkpoint-every",
        metavar="N[steps]",
        help=f"write a checkpoint every N epochs, or N steps with 'Nsteps'; 0 = only on "
        f"Ctrl-C / SIGTERM and at the end (default: {default})",
    )
    p.add_argument("--keep", type=int, help="checkpoints to keep besides the best (default: 3)")


def _run_resume(args: argparse.Namespace) -> int:
    from descent.resume import resume

    result = resume(args.run_dir, quiet=args.quiet)
    return _exit_code(result.fit.stopped, result.fit.signal)


def _given(args: argparse.Namespace, names: Sequence[str]) -> dict:
    """The options the user actually gave (argparse defaults are None)."""
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def _run_train(args: argparse.Namespace) -> int:
    from dataclasses import fields, replace

    from descent.config import BOOK_RECIPE, TrainConfig
    from descent.train import run_train

    cfg = TrainConfig(source=args.source, quiet=args.quiet)
    if args.book:
        cfg = replace(cfg, **BOOK_RECIPE)
    given = _given(args, [f.name for f in fields(TrainConfig) if f.name not in ("source", "quiet")])
    if "classes" in given:
        given["classes"] = [c.strip() for c in given["classes"].split(",") if c.strip()]
    if "epochs" in given and "steps" not in given:
        given["steps"] = None  # --epochs wins over a preset's step count
    cfg = replace(cfg, **given)
    result = run_train(cfg)
    return _exit_code(result.fit.stopped, result.fit.signal)


def parse_init(text: str) -> dict[str, float]:
    """'b1=500,b2=1e-4' -> {'b1': 500.0, 'b2': 0.0001}."""
    from descent.errors import ConfigError

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


def _run_fit(args: argparse.Namespace) -> int:
    from dataclasses import fields, replace

    from descent.config import FitConfig
    from descent.fit_job import run_fit

    names = [f.name for f in fields(FitConfig) if f.name not in ("data", "quiet")]
    given = _given(args, names)
    if "init" in given:
        given["init"] = parse_init(given["init"])
    if "lr" in given and "optimizer" not in given:
        # Levenberg-Marquardt, the default, takes no learning rate: asking for one
        # asks for gradient descent.
        given["optimizer"] = "sgd"
        if not args.quiet:
            print("--lr given without --optimizer: fitting by gradient descent (sgd)")
    cfg = replace(FitConfig(data=args.data, quiet=args.quiet), **given)
    result = run_fit(cfg)
    return _exit_code(result.fit.stopped, result.fit.signal)


def _lr_tool_config(args: argparse.Namespace):
    """A TrainConfig (or, with --y, a FitConfig) from lr-find / lr-sweep options."""
    from dataclasses import fields

    from descent.config import FitConfig, TrainConfig
    from descent.errors import ConfigError

    if args.y is not None:
        if not args.model:
            raise ConfigError("fit mode (--y given) needs --model with the formula to fit")
        names = [f.name for f in fields(FitConfig)]
        given = _given(args, [n for n in names if n not in ("data", "quiet", "out", "y")])
        if "init" in given:
            given["init"] = parse_init(given["init"])
        given.setdefault("optimizer", "sgd")
        return FitConfig(data=args.source, y=args.y, quiet=args.quiet, **given)
    for opt in ("x", "init"):
        if getattr(args, opt) is not None:
            raise ConfigError(f"--{opt} is for fit mode (with --y); train mode takes images")
    names = [f.name for f in fields(TrainConfig)]
    given = _given(args, [n for n in names if n not in ("source", "quiet", "out", "epochs")])
    if "classes" in given:
        given["classes"] = [c.strip() for c in given["classes"].split(",") if c.strip()]
    return TrainConfig(source=args.source, quiet=args.quiet, **given)


def _run_lr_find(args: argparse.Namespace) -> int:
    from descent.lr_jobs import run_lr_find

    run_lr_find(
        _lr_tool_config(args),
        start_lr=args.start_lr,
        end_lr=args.end_lr,
        steps=args.iterations,
        out=args.out,
    )
    return 0


def _run_lr_sweep(args: argparse.Namespace) -> int:
    from descent.lr_jobs import run_lr_sweep
    from descent.sweep import parse_lrs

    lrs = parse_lrs(args.lrs)
    run_lr_sweep(_lr_tool_config(args), lrs, epochs=args.epochs, out=args.out)
    return 0


def _run_predict(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from descent.checkpoint import write_json
    from descent.predict import predict_files

    preds = predict_files(args.run_dir, args.images, resize=args.resize)
    width = max(len(p.file) for p in preds)
    for p in preds:
        print(f"{p.file:<{width}}  {p.label}  {p.probability:.4f}")
    if args.json:
        write_json(args.json, [asdict(p) for p in preds])
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from descent.config import DemoConfig
    from descent.demo import run_demo

    result = run_demo(DemoConfig(out=args.out, seed=args.seed, quiet=args.quiet))
    return _exit_code(result.fit.stopped, getattr(result, "interrupted_by", None))


def _run_explain(args: argparse.Namespace) -> int:
    from descent.data.batches import Batches
    from descent.data.synthetic import quadratic, roller_coaster
    from descent.learner import Learner
    from descent.models.function import FunctionModel
    from descent.stopping import Converged, EarlyStopping

    t, speed = roller_coaster()
    learner = Learner(
        FunctionModel(quadratic, ["a", "b", "c"], [1.0, 1.0, 1.0]),
        Batches(t, speed),
        loss="mse",
        optimizer="sgd",
        lr=1e-5,
        callbacks=[EarlyStopping(), Converged()],
    )
    print("The seven steps of learning, as descent runs them (the demo's learner):\n")
    print(learner.explain())
    return 0


def _exit_code(stopped: str, signal_name: str | None) -> int:
    if stopped == "interrupted":
        return EXIT_INTERRUPT.get(signal_name or "SIGINT", 130)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except DescentError as e:
        if args.debug:
            traceback.print_exc()
        print(f"descent {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"descent {args.command}: aborted", file=sys.stderr)
        return 130
