"""`descent predict RUN DATA.csv` on a fit run: the fitted curve at new inputs, with
its confidence and prediction bands (fitting/bands.py, the delta method as lmfit's
eval_uncertainty).

The formula and its parameters come from model.json + model.safetensors, the
covariance and degrees of freedom from uncertainty.json, all checked when read. The
output has the input columns, then y_hat, se_fit (the delta-method standard error of
y_hat), conf_low/conf_high and pred_low/pred_high at the chosen level. A weighted fit's
prediction band needs each new row's sigma: the fit's --sigma column, when DATA.csv has
it; otherwise the prediction columns are left out and `note` says why.
"""

from __future__ import annotations

import io
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from descent.data.table_rows import read_text_column
from descent.data.tables import read_table
from descent.errors import CheckpointError, ConfigError, DataError
from descent.fitting.bands import Uncertainty, bands
from descent.fitting.weights import check_sigma
from descent.io.files import atomic_write_text, read_json, write_json
from descent.io.models import load_model


@dataclass
class CurvePrediction:
    """The output columns, each (m,), in order; `level` the bands' probability."""

    columns: dict[str, torch.Tensor]
    level: float
    note: str = ""
    run: str = ""
    data: str = ""
    inputs: list[str] = field(default_factory=list)

    def to_csv(self) -> str:
        names = list(self.columns)
        values = torch.stack([self.columns[n].double().cpu() for n in names], 1).tolist()
        out = io.StringIO()
        out.write(",".join(names) + "\n")
        for row in values:
            out.write(",".join(repr(v) if math.isfinite(v) else "" for v in row) + "\n")
        return out.getvalue()

    def to_json(self) -> dict:
        return {
            "run": self.run,
            "data": self.data,
            "level": self.level,
            "inputs": self.inputs,
            "note": self.note,
            "columns": {k: v.tolist() for k, v in self.columns.items()},
        }


def is_fit_run(run_dir: str | Path) -> bool:
    """True when the run folder holds a fitted formula (or a --by fit)."""
    run_dir = Path(run_dir)
    desc = run_dir / "model.json"
    if desc.is_file():
        raw = read_json(desc, "model description")
        return isinstance(raw, dict) and raw.get("kind") == "formula"
    config = run_dir / "config.json"
    if config.is_file():
        raw = read_json(config, "run configuration")
        return isinstance(raw, dict) and raw.get("command") == "fit"
    return False


def predict_curve(run_dir: str | Path, data: str | Path, level: float = 0.95) -> CurvePrediction:
    """The fit in `run_dir` evaluated at the rows of `data` (CSV, TSV or Parquet), with
    its bands at probability `level`."""
    run_dir, data = Path(run_dir), Path(data)
    if not 0 < level < 1:
        raise ConfigError(f"--level must be a probability between 0 and 1, got {level}")
    if not (run_dir / "model.json").is_file() and (run_dir / "groups.csv").is_file():
        raise CheckpointError(
            f"{run_dir}: a --by run holds one fit per group and no single model to predict "
            "with; fit the group you need on its own, then predict with that run"
        )
    model, desc = load_model(run_dir)
    inputs = desc.get("inputs")
    if desc.get("kind") != "formula" or not isinstance(inputs, list):
        raise CheckpointError(f"{run_dir / 'model.json'}: not a fitted formula")
    unc = Uncertainty.load(run_dir / "uncertainty.json", model.names)
    header = read_table(data, columns=[]).header
    missing = [c for c in inputs if c not in header]
    if missing:
        raise DataError(
            f"{data}: no column {', '.join(repr(c) for c in missing)}; the formula "
            f"{desc['args']['formula']!r} needs the input column(s) {', '.join(inputs)}, "
            f"and the file's columns are {', '.join(header)}"
        )
    sigma_col = unc.sigma_column if unc.sigma_column in header else None
    table = read_table(data, columns=[*inputs, *([sigma_col] if sigma_col else [])])
    cols = [table.columns[c] for c in inputs]
    x = cols[0] if len(cols) == 1 else torch.stack(cols, 1)  # (m,) or (m, d)
    sigma = None
    if sigma_col is not None:

        def line(k: int) -> int:
            return int(read_text_column(data, inputs[0]).without(table.dropped_rows).lines[k])

        sigma = check_sigma(table.columns[sigma_col], f"{data}: {sigma_col}", len(x), line)
    b = bands((model, unc), x, level, sigma)
    out = {c: table.columns[c] for c in inputs}
    out["y_hat"], out["se_fit"] = b.y_hat, b.stderr
    out["conf_low"], out["conf_high"] = b.y_hat - b.confidence, b.y_hat + b.confidence
    if b.prediction is not None:
        out["pred_low"], out["pred_high"] = b.y_hat - b.prediction, b.y_hat + b.prediction
    return CurvePrediction(out, level, b.note, str(run_dir), str(data), list(inputs))


def write_prediction(pred: CurvePrediction, out: str | None, json_path: str | None) -> None:
    """CSV to `out` (atomically) or to stdout; the JSON form to `json_path` too."""
    text = pred.to_csv()
    if out:
        atomic_write_text(out, text)
    else:
        sys.stdout.write(text)
    if json_path:
        write_json(json_path, pred.to_json())
    if pred.note:
        print(f"note: {pred.note}", file=sys.stderr)
