"""A run's folder as the events the page draws: what report.html and `descent watch`
show of a run, read back from its files alone.

    events = run_events("runs/train-20250101-120000")     # [{"type": "run", ...}, ...]
    events_from_run({"run": "a", "history": rows, "stopped": "max_epochs"})

From the folder (every file optional but config.json, each validated as it is read):

    config.json                 the run event: its id (the folder's name), title, task
    metrics.csv | summary.json  one epoch event per record (metrics.csv is written at
                                the end; summary.json's history is the same rows)
    checkpoints/ckpt-*.json     while the run is going: the newest checkpoint's history
    model.json + .safetensors   the weight images (classifiers), the parameters (fits)
    the fit's CSV (config.data) the data and the fitted curve, when it is still there
    summary.json                the end event: why it stopped, the final metrics

A folder whose files are half-written (a run going on) gives what can be read now;
`RunFiles.changed()` tells a follower when to read again.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from descent.errors import DescentError
from descent.io.checkpoints import list_checkpoints, load_checkpoint
from descent.io.files import read_json
from descent.io.models import load_model
from descent.report.events import floats, subsample, weight_images
from descent.report.rundata_groups import groups_events, is_groups_run

MAX_DATA_POINTS = 5_000  # as the live feed sends: a fit's points, evenly subsampled
CURVE_POINTS = 400  # the fitted curve's grid, as `descent fit` draws it
WATCHED_FILES = ("config.json", "metrics.csv", "summary.json", "model.safetensors")


def events_from_run(data: Mapping[str, Any]) -> list[dict]:
    """One run's data as the events the page draws.

    Keys (all optional but `history`): run, title, task, config, history (per-epoch
    records), stopped, message, final ({name: value}), params ({name: value}),
    data ((x, y) points of a curve fit), curve ((x, y) of the fitted function),
    weights ((k, n_pixels) tensor), labels (a name per weight image), epochs (the
    run's length, for the page's "epoch E of N"); or `events`, made already (a --by
    run's, report/rundata_groups.py), returned as they are."""
    if data.get("events") is not None:
        return [dict(e) for e in data["events"]]
    run = str(data.get("run", "run"))
    history = [dict(r) for r in data.get("history", [])]
    header = {
        "type": "run",
        "run": run,
        "title": data.get("title", run),
        "task": data.get("task", "train"),
        "config": dict(data.get("config", {})),
    }
    if data.get("epochs") is not None:
        header["epochs"] = data["epochs"]
    events: list[dict] = [header]
    events += [{"type": "epoch", "run": run, "record": r} for r in history]
    last = history[-1].get("epoch", len(history)) if history else 0
    if data.get("data") is not None:
        x, y = data["data"]
        x, y = subsample(floats(x), floats(y), MAX_DATA_POINTS)
        events.append({"type": "data", "run": run, "x": x, "y": y})
    if data.get("curve") is not None:
        x, y = data["curve"]
        events.append({"type": "curve", "run": run, "epoch": last, "x": floats(x), "y": floats(y)})
    if data.get("params") is not None:
        values = {k: float(v) for k, v in data["params"].items()}
        events.append({"type": "params", "run": run, "epoch": last, "values": values})
    if data.get("weights") is not None:
        pictures = weight_images(data["weights"], labels=data.get("labels"))
        events.append({"type": "weights", "run": run, "epoch": last, **pictures})
    if data.get("stopped") is not None:
        final = dict(data.get("final") or (history[-1] if history else {}))
        events.append(
            {
                "type": "end",
                "run": run,
                "stopped": data["stopped"],
                "message": data.get("message", ""),
                "epochs": len(history),
                "final": final,
            }
        )
    return events


def run_events(run_dir: str | Path, run: str | None = None) -> list[dict]:
    """The events of the run in `run_dir` (a train or fit folder), read from its files;
    `run` is its id on the page (default: the folder's name)."""
    return events_from_run(read_run(run_dir, run))


def read_run(run_dir: str | Path, run: str | None = None) -> dict[str, Any]:
    """What `events_from_run` takes, from a run folder. Raises DescentError when the
    folder is not a run's (no readable config.json); what else cannot be read yet (a
    run going on) is left out."""
    folder = Path(run_dir)
    config = read_json(folder / "config.json", "run configuration")
    if not isinstance(config, dict) or config.get("command") not in ("train", "fit"):
        raise DescentError(f"{folder / 'config.json'}: not the configuration of a train or fit run")
    summary = _optional_json(folder / "summary.json")
    command = config["command"]
    run = run or folder.resolve().name
    if is_groups_run(config):  # descent fit --by: a table of groups, no epochs
        return {
            "run": run,
            "events": groups_events(folder, config, summary, run, run_title(config)),
        }
    data: dict[str, Any] = {
        "run": run,
        "title": f"{run_title(config)} · {run}",
        "task": "classify" if command == "train" else "fit",
        "config": config,
        "history": _history(folder, summary),
    }
    if command == "train" and config.get("steps") is None or command == "fit":
        data["epochs"] = config.get("epochs")
    if summary is not None:
        data["stopped"] = summary.get("stopped")
        data["message"] = summary.get("message", "")
        data["final"] = _final(command, summary, data["history"])
    data.update(_model_pictures(folder, config, summary))
    return data


class RunFiles:
    """Watches a run folder's files: `changed()` is True when any of them (or the
    newest checkpoint) has changed since the last call, by size and modification time."""

    def __init__(self, run_dir: str | Path) -> None:
        self.folder = Path(run_dir)
        self._seen: tuple | None = None

    def stamp(self) -> tuple:
        stamps = []
        newest = list_checkpoints(self.folder / "checkpoints")[-1:]
        for path in [*(self.folder / n for n in WATCHED_FILES), *newest]:
            try:
                st = os.stat(path)
                stamps.append((path.name, st.st_size, st.st_mtime_ns))
            except OSError:
                stamps.append((path.name, None, None))
        return tuple(stamps)

    def changed(self) -> bool:
        now = self.stamp()
        changed, self._seen = now != self._seen, now
        return changed

    @property
    def finished(self) -> bool:
        """summary.json is there: the run has ended and its files are final."""
        return (self.folder / "summary.json").is_file()


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """metrics.csv (History.to_csv) back as records; a DescentError names the row and
    column of a cell that is not a number."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DescentError(f"{path}: cannot read the metrics: {e}") from None
    rows = []
    for line, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        rec: dict[str, float] = {}
        for key, cell in row.items():
            if key is None or cell is None:
                raise DescentError(f"{path}, row {line}: not as many cells as the header has")
            if cell == "":
                continue  # a column this epoch does not have
            try:
                rec[key] = int(cell) if key == "epoch" else float(cell)
            except ValueError:
                raise DescentError(
                    f"{path}, row {line}, column {key!r}: {cell!r} is not a number"
                ) from None
        rows.append(rec)
    return rows


# -- the pieces ----------------------------------------------------------------------
def run_title(config: Mapping[str, Any]) -> str:
    """A run's title from its config.json: "train mnist-sample (3, 7), linear"."""
    if config.get("command") == "train":
        classes = config.get("classes")
        which = (
            f" ({', '.join(map(str, classes))})" if isinstance(classes, list) and classes else ""
        )
        return f"train {config.get('source', '')}{which}, {config.get('model', '')}"
    if config.get("command") == "fit":
        return f"fit {config.get('y', '')} = {config.get('model', '')}"
    return str(config.get("command", "run"))


def _optional_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        found = read_json(path, "run summary")
    except DescentError:
        return None  # being written: read again next time
    return found if isinstance(found, dict) else None


def _history(folder: Path, summary: dict | None) -> list[dict]:
    """metrics.csv, else summary.json's history, else the newest checkpoint's."""
    if (folder / "metrics.csv").is_file():
        try:
            return read_metrics(folder / "metrics.csv")
        except DescentError:
            pass
    if summary is not None and isinstance(summary.get("history"), list):
        return [_finite_record(r) for r in summary["history"] if isinstance(r, dict)]
    for path in reversed(list_checkpoints(folder / "checkpoints")):
        try:
            state, _ = load_checkpoint(path)
        except DescentError:
            continue  # pruned or being written meanwhile: try the one before
        return [dict(r) for r in state["history"]]
    return []


def _finite_record(rec: dict) -> dict:
    """A summary.json record (null for NaN) with numbers only."""
    return {k: (math.nan if v is None else v) for k, v in rec.items()}


def _final(command: str, summary: dict, history: list[dict]) -> dict:
    final = {k: v for k, v in (history[-1] if history else {}).items() if k != "time"}
    if command == "train":
        for key in ("valid_accuracy", "best_epoch", "seconds"):
            if summary.get(key) is not None:
                final[key] = summary[key]
    else:
        for name, value in (summary.get("params") or {}).items():
            err = (summary.get("stderr") or {}).get(name)
            final[f"param {name}"] = value
            if err is not None:
                final[f"stderr {name}"] = err
        for key in ("rss", "r2", "n", "steps", "seconds"):
            if summary.get(key) is not None:
                final[key] = summary[key]
    return final


def _model_pictures(folder: Path, config: dict, summary: dict | None) -> dict[str, Any]:
    """Weight images of a classifier; the parameters, data and curve of a fit."""
    if not (folder / "model.json").is_file():
        return {}
    try:
        model, _ = load_model(folder)
    except (DescentError, OSError):
        return {}  # being written, or damaged: the rest of the report still stands
    out: dict[str, Any] = {}
    if callable(getattr(model, "class_weights", None)):
        weights = model.class_weights()
        labels = (summary or {}).get("labels")
        if labels and weights.shape[0] == 1 and len(labels) == 2:
            out["labels"] = [f"{labels[1]} vs {labels[0]}"]
        elif labels and weights.shape[0] == len(labels):
            out["labels"] = [str(v) for v in labels]
        out["weights"] = weights
    values = getattr(model, "values", None)
    if callable(values):
        out["params"] = values()
        out.update(_fit_data(model, config))
    return out


def _fit_data(model: Any, config: dict) -> dict[str, Any]:
    """The fit's points and its curve on 400 points over their range (one input), or
    at the points themselves against the row number (several inputs); nothing when
    the data file cannot be read from here any more."""
    import torch

    from descent.data.tables import read_table

    inputs = list(getattr(getattr(model, "formula", None), "inputs", []))
    if not inputs or not all(isinstance(config.get(k), str) and config[k] for k in ("data", "y")):
        return {}
    try:
        table = read_table(
            config["data"],
            columns=[*inputs, config["y"]],
            drop_missing=bool(config.get("drop_missing")),
        )
        x, y = table.select(inputs, config["y"])
    except (DescentError, OSError):
        return {}
    with torch.no_grad():
        if x.dim() == 1:
            grid = torch.linspace(float(x.min()), float(x.max()), CURVE_POINTS, dtype=x.dtype)
            return {"data": (x, y), "curve": (grid, model(grid))}
        rows = torch.arange(len(y), dtype=y.dtype)
        return {"data": (rows, y), "curve": (rows, model(x))}
