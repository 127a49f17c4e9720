"""`descent train`: its options and how they become one command call."""

from __future__ import annotations

import argparse

from descent.cli.common import (
    add_checkpoint_options,
    add_device_options,
    add_optim_options,
    add_output_options,
    add_schedule_option,
    add_watch_options,
    default,
    exit_status,
    given_options,
    tensorboard,
    watching,
)
from descent.commands.config import BOOK_RECIPE, TrainConfig
from descent.options import CLASSIFIER_LOSSES, DISTANCES, IMAGE_MODELS, check_mean_options


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    train = sub.add_parser(
        "train",
        parents=[common],
        help="train an image classifier (per-pixel weights or a small net)",
        description=(
            "Trains a classifier on images: one weight per pixel per class (--model linear, "
            "the book's idea) or a small neural net (--model mlp); --model mean is the book's "
            "pixel-similarity baseline (the nearest mean image: nothing to step). "
            "SOURCE is 'mnist-sample' "
            "(5,000 bundled MNIST digits), a folder with train/<label>/ and valid/<label>/ "
            "(fastai's MNIST_SAMPLE), a folder of <label>/ folders, a folder of MNIST IDX "
            "files, or a .npz with x and y. Writes a run directory with the model, "
            "metrics.csv and plots."
        ),
        epilog="Example: descent train mnist-sample --classes 3,7",
    )
    train.add_argument("source", help="mnist-sample, an image folder, an IDX folder or a .npz")
    train.add_argument("--classes", help="comma-separated labels to keep, e.g. 3,7")
    train.add_argument(
        "--model", choices=IMAGE_MODELS, help=f"default: {default(TrainConfig, 'model')}"
    )
    train.add_argument(
        "--distance",
        choices=DISTANCES,
        help="--model mean: l1 (the book's mean absolute pixel difference) or l2; also the "
        f"baseline beside linear and mlp runs (default: {default(TrainConfig, 'distance')})",
    )
    train.add_argument(
        "--hidden",
        type=int,
        help=f"hidden units of the mlp (default: {default(TrainConfig, 'hidden')})",
    )
    train.add_argument(
        "--loss",
        choices=CLASSIFIER_LOSSES,
        help="default auto: bce with one output for two classes, else cross_entropy",
    )
    add_optim_options(train)
    add_schedule_option(train)
    train.add_argument(
        "--batch-size", type=int, help=f"default: {default(TrainConfig, 'batch_size')}"
    )
    train.add_argument(
        "--epochs",
        type=int,
        help=f"the most epochs to train (default: {TrainConfig.EPOCHS_EARLY_STOPPING} with "
        f"early stopping, else {TrainConfig.EPOCHS_NO_EARLY_STOPPING})",
    )
    train.add_argument("--steps", type=int, help="train for this many steps instead of --epochs")
    train.add_argument(
        "--patience",
        type=int,
        help="early stopping patience on valid_loss, 0 = off "
        f"(default: {TrainConfig.DEFAULT_PATIENCE}; off with --schedule one-cycle or cosine)",
    )
    train.add_argument(
        "--valid-pct",
        type=float,
        help="validation share when the source has none "
        f"(default: {default(TrainConfig, 'valid_pct')})",
    )
    train.add_argument(
        "--seed",
        type=int,
        help=f"split, initial weights and batch order (default: {default(TrainConfig, 'seed')})",
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
        "--init-std",
        type=float,
        help=f"initial weights ~ N(0, init_std) (default: {default(TrainConfig, 'init_std')})",
    )
    train.add_argument(
        "--book",
        action="store_true",
        help=(
            "the book's recipe: linear, mnist loss, SGD lr 1.0, batch 256, raw pixels, "
            "980 steps (the book's 20 epochs)"
        ),
    )
    train.add_argument(
        "--autograd",
        action="store_true",
        default=None,
        help="compute the gradient with autograd (loss.backward()) instead of the fused, "
        "hand-derived gradient descent uses for its own models and losses",
    )
    add_device_options(train, nproc=True)
    add_checkpoint_options(train, TrainConfig)
    add_output_options(train, "train")
    add_watch_options(train)
    train.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    from dataclasses import fields, replace

    if args.nproc is not None:  # re-run this command line under torchrun, N times
        from descent.commands.launch import launch

        return launch(args.argv, args.nproc)
    from descent.commands.train import train_command

    check_mean_options(args.model, vars(args))  # before anything is read
    cfg = TrainConfig(source=args.source, quiet=args.quiet)
    if args.book:
        cfg = replace(cfg, **BOOK_RECIPE)
    given = given_options(
        args, [f.name for f in fields(TrainConfig) if f.name not in ("source", "quiet")]
    )
    if "classes" in given:
        given["classes"] = [c.strip() for c in given["classes"].split(",") if c.strip()]
    if "epochs" in given and "steps" not in given:
        given["steps"] = None  # --epochs wins over a preset's step count
    cfg = replace(cfg, **given)
    with watching(args) as watch, tensorboard(args) as board:
        result = train_command(cfg, overwrite=args.overwrite, watch=watch, callbacks=board)
    return exit_status(result.fit_result, result.finish_signal)
