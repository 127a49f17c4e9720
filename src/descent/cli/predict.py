"""`descent predict`: its options and how they become one command call."""

from __future__ import annotations

import argparse
from pathlib import Path

from descent.cli.common import ExitStatus
from descent.errors import ConfigError


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    predict = sub.add_parser(
        "predict",
        parents=[common],
        help="predict with a run: labels of images (train), or a fitted curve with its "
        "bands at the rows of a CSV (fit)",
        description=(
            "Loads RUN_DIR/model.safetensors + model.json. A classifier (descent train) "
            "labels each image, with the probability of the label; for a --model mean run, "
            "the distance to each class's mean image instead (the nearest is the label). "
            "A fitted formula (descent fit) is evaluated at the rows of "
            "one CSV/TSV/Parquet file: its input columns, then y_hat, se_fit, the "
            "confidence band (conf_low, conf_high) and the prediction band (pred_low, "
            "pred_high), as CSV on stdout or to --out."
        ),
        epilog="Example: descent predict runs/fit1 new_x.csv --out predicted.csv",
    )
    predict.add_argument("run_dir", help="a run directory made by `descent train` or `fit`")
    predict.add_argument("files", nargs="+", help="image files, or one table for a fit run")
    predict.add_argument(
        "--resize", action="store_true", help="resize images of another size (default: refuse them)"
    )
    predict.add_argument(
        "--level",
        type=float,
        help="a fit run's band probability (default: 0.95)",
    )
    predict.add_argument("--out", help="a fit run's CSV output file (default: stdout)")
    predict.add_argument("--json", help="also write the predictions to this JSON file")
    predict.set_defaults(run=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from descent.commands.predict import predict_files
    from descent.commands.predict_curve import is_fit_run, predict_curve, write_prediction
    from descent.commands.runs import check_outside_run
    from descent.io.files import check_writable, write_json

    outputs = [(o, p) for o, p in (("--json", args.json), ("--out", args.out)) if p is not None]
    for option, path in outputs:  # before any work
        check_writable(path, option)
        check_outside_run(path, option, args.run_dir)
        for name in args.files:
            if Path(name).resolve() == Path(path).resolve():
                raise ConfigError(
                    f"{option} {path}: that is the input file; writing there would replace "
                    "it: give another file name"
                )
    if len(outputs) == 2 and Path(args.out).resolve() == Path(args.json).resolve():
        raise ConfigError(f"--out and --json are both {args.out}: give two file names")

    if is_fit_run(args.run_dir):
        if len(args.files) != 1:
            raise ConfigError(
                f"{args.run_dir} is a fit run: give one table of its input columns, "
                f"not {len(args.files)} files"
            )
        if args.resize:
            raise ConfigError("--resize is for image classifiers, not a fit run")
        level = 0.95 if args.level is None else args.level
        write_prediction(predict_curve(args.run_dir, args.files[0], level), args.out, args.json)
        return ExitStatus.SUCCESS
    if args.out is not None or args.level is not None:
        raise ConfigError("--out and --level are for fit runs; this run is a classifier")
    preds = predict_files(args.run_dir, args.files, resize=args.resize)
    width = max(len(p.file) for p in preds)
    for p in preds:
        if p.distances is None:
            print(f"{p.file:<{width}}  {p.label}  {p.probability:.4f}")
            continue
        others = ", ".join(f"{k} {v:.4f}" for k, v in p.distances.items() if k != p.label)
        print(
            f"{p.file:<{width}}  {p.label}  {p.measure} {p.distance:.4f} (nearest mean; {others})"
        )
    if args.json:
        write_json(args.json, [asdict(p) for p in preds])
    return ExitStatus.SUCCESS
