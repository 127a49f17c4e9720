"""`descent predict`: its options and how they become one command call."""

from __future__ import annotations

import argparse

from descent.cli.common import ExitStatus


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    predict = sub.add_parser(
        "predict",
        parents=[common],
        help="predict labels of image files with a trained model",
        description=(
            "Loads RUN_DIR/model.safetensors + model.json and labels each image, with the "
            "probability of the label; for a --model mean run, the distance to each class's "
            "mean image instead (the nearest is the label)."
        ),
    )
    predict.add_argument("run_dir", help="a run directory made by `descent train`")
    predict.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...)")
    predict.add_argument(
        "--resize", action="store_true", help="resize images of another size (default: refuse them)"
    )
    predict.add_argument("--json", help="also write the predictions to this JSON file")
    predict.set_defaults(run=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from descent.commands.predict import predict_files
    from descent.io.files import write_json

    preds = predict_files(args.run_dir, args.images, resize=args.resize)
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
