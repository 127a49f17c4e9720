"""`descent predict RUN_DIR IMAGE...`: labels and probabilities from a saved model.

The model is rebuilt from model.json + model.safetensors alone, and each image
goes through exactly the preprocessing recorded there (size, greyscale, 0-255
scaling, deskewing)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from descent.core.metrics import class_probabilities
from descent.data.images import read_image_file
from descent.data.preprocess import Preprocess
from descent.io.models import load_model
from descent.io.schemas import check_classifier


@dataclass
class Prediction:
    """A label and how sure: the probabilities of a trained classifier, or for the mean-image
    baseline (--model mean) the distance to each class's mean image, and no probability:
    a softmax of minus distances is not a calibrated one."""

    file: str
    label: str
    probability: float | None
    probabilities: dict[str, float] | None
    distance: float | None = None  # to the nearest mean image (the label's)
    distances: dict[str, float] | None = None
    measure: str = "probability"  # or "l1 distance" / "l2 distance"


def predict_files(
    run_dir: str | Path, files: Sequence[str | Path], resize: bool = False
) -> list[Prediction]:
    model, desc = load_model(run_dir)
    labels, preprocessing = check_classifier(desc, model, Path(run_dir) / "model.json")
    pre = Preprocess.from_dict(preprocessing)
    images = torch.stack([read_image_file(f, pre.size, resize=resize) for f in files])  # (n, h, w)
    with torch.no_grad():
        scores = model(pre.apply(images))  # (n, k), or (n, 1) for one output
    if model.kind == "mean":  # scores are minus the distances to the mean images
        pairs = zip(files, -scores, strict=True)
        return [_nearest(str(f), labels, d, model.distance) for f, d in pairs]
    probs = class_probabilities(scores)  # (n, k)
    out = []
    for f, p in zip(files, probs, strict=True):
        i = int(p.argmax())
        out.append(
            Prediction(str(f), labels[i], float(p[i]), dict(zip(labels, p.tolist(), strict=True)))
        )
    return out


def _nearest(file: str, labels: list[str], distances: torch.Tensor, kind: str) -> Prediction:
    i = int(distances.argmin())
    ds = dict(zip(labels, distances.tolist(), strict=True))
    return Prediction(file, labels[i], None, None, ds[labels[i]], ds, f"{kind} distance")
