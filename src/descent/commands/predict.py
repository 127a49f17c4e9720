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
    file: str
    label: str
    probability: float
    probabilities: dict[str, float]


def predict_files(
    run_dir: str | Path, files: Sequence[str | Path], resize: bool = False
) -> list[Prediction]:
    model, desc = load_model(run_dir)
    labels, preprocessing = check_classifier(desc, model, Path(run_dir) / "model.json")
    pre = Preprocess.from_dict(preprocessing)
    images = torch.stack([read_image_file(f, pre.size, resize=resize) for f in files])  # (n, h, w)
    with torch.no_grad():
        probs = class_probabilities(model(pre.apply(images)))  # (n, k)
    out = []
    for f, p in zip(files, probs, strict=True):
        i = int(p.argmax())
        out.append(
            Prediction(str(f), labels[i], float(p[i]), dict(zip(labels, p.tolist(), strict=True)))
        )
    return out
