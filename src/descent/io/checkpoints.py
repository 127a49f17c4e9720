"""Training checkpoints: checkpoints/ckpt-e<epochs>-b<batches>.safetensors + .json.

A checkpoint is a Learner.state_dict(): its tensors in safetensors, the rest as JSON
that refers to them by key. The JSON is written last and holds the tensor file's
SHA-256, so a checkpoint is complete or absent, and a damaged one is recognised.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from descent.errors import CheckpointError
from descent.io.files import atomic_write_bytes, atomic_write_text, read_json
from descent.io.models import load_state_into, load_tensors, tensor_bytes

CHECKPOINT_FORMAT = "descent-checkpoint"
CHECKPOINT_VERSION = 1


def _encode(obj: Any, key: str, tensors: dict[str, torch.Tensor]) -> Any:
    """A JSON-able copy of `obj`, its tensors moved into `tensors` under path keys."""
    if isinstance(obj, torch.Tensor):
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, float) and not math.isfinite(obj):
        return {"__float__": repr(obj)}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, f"{key}.{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, f"{key}.{i}", tensors) for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, f"{key}.{k}", tensors) for k, v in obj.items()}
        items = [
            [_encode(k, f"{key}.k{i}", tensors), _encode(v, f"{key}.{i}", tensors)]
            for i, (k, v) in enumerate(obj.items())
        ]
        return {"__items__": items}
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint ({key})")


def _decode(obj: Any, tensors: dict[str, torch.Tensor], source: Path) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors, source) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        try:
            return tensors[obj["__tensor__"]]
        except (KeyError, TypeError):
            raise CheckpointError(
                f"{source}: refers to tensor {obj['__tensor__']!r}, which its tensor file lacks"
            ) from None
    if "__float__" in obj:
        return float(obj["__float__"]) if obj["__float__"] in ("nan", "inf", "-inf") else math.nan
    if "__tuple__" in obj:
        return tuple(_decode(v, tensors, source) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {
            _decode(k, tensors, source): _decode(v, tensors, source) for k, v in obj["__items__"]
        }
    return {k: _decode(v, tensors, source) for k, v in obj.items()}


def checkpoint_name(state: dict) -> str:
    return f"ckpt-e{state['epochs_done']:06d}-b{state['batches_done']:06d}"


def save_checkpoint(folder: str | Path, state: dict, meta: dict | None = None) -> Path:
    """Write a learner state_dict as <name>.safetensors, then <name>.json (the commit
    point: it holds the tensor file's SHA-256). Returns the JSON's path."""
    folder = Path(folder)
    name = checkpoint_name(state)
    tensors: dict[str, torch.Tensor] = {}
    body = _encode(state, "state", tensors)
    data = tensor_bytes(tensors)
    atomic_write_bytes(folder / f"{name}.safetensors", data)
    doc = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "tensors": f"{name}.safetensors",
        "sha256": hashlib.sha256(data).hexdigest(),
        "meta": meta or {},
        "state": body,
    }
    atomic_write_text(folder / f"{name}.json", json.dumps(doc, allow_nan=False) + "\n")
    return folder / f"{name}.json"


def load_checkpoint(path: str | Path) -> tuple[dict, dict]:
    """(state, meta) from a checkpoint's JSON and its tensor file, checked: format and
    version, the tensor file's SHA-256 (truncated or swapped files are refused)."""
    path = Path(path)
    doc = read_json(path, "checkpoint")
    if not isinstance(doc, dict) or doc.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f'{path}: not a descent checkpoint (expected "format": "{CHECKPOINT_FORMAT}")'
        )
    if doc.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {doc.get('version')!r}; this descent reads version "
            f"{CHECKPOINT_VERSION}"
        )
    tensor_file = path.parent / str(doc.get("tensors", ""))
    if tensor_file.parent != path.parent or not str(doc.get("tensors", "")).endswith(
        ".safetensors"
    ):
        raise CheckpointError(f"{path}: names an unexpected tensor file {doc.get('tensors')!r}")
    try:
        raw = tensor_file.read_bytes()
    except OSError:
        raise CheckpointError(
            f"{tensor_file}: missing; the checkpoint {path.name} is incomplete"
        ) from None
    if hashlib.sha256(raw).hexdigest() != doc.get("sha256"):
        raise CheckpointError(
            f"{tensor_file}: its contents do not match {path.name} (SHA-256 differs): "
            "truncated, corrupt or replaced"
        )
    tensors = load_tensors(tensor_file, "checkpoint tensor file")
    state = _decode(doc.get("state"), tensors, path)
    if not isinstance(state, dict) or "model" not in state or "epochs_done" not in state:
        raise CheckpointError(f"{path}: the checkpoint has no training state")
    return state, doc.get("meta", {})


def list_checkpoints(folder: str | Path) -> list[Path]:
    """Checkpoint JSON files in `folder`, oldest first (by position in training)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("ckpt-e*-b*.json") if not p.name.startswith("."))


@dataclass(frozen=True)
class ResumeFrom:
    """A checkpoint to continue from: its training state and the file it came from."""

    state: dict
    path: Path

    def where(self) -> str:
        """'after epoch 14, batch 21 of epoch 15', for messages."""
        state = self.state
        return f"after epoch {state['epochs_done']}" + (
            f", batch {state['batches_done']} of epoch {state['epochs_done'] + 1}"
            if state["batches_done"]
            else ""
        )


def latest_checkpoint(run_dir: Path, warn=None) -> ResumeFrom:
    """The newest checkpoint in run_dir/checkpoints that loads; older ones are tried
    when a newer one is damaged (`warn(message)` is told about each one skipped)."""
    found = list_checkpoints(run_dir / "checkpoints")
    if not found:
        raise CheckpointError(
            f"{run_dir / 'checkpoints'}: no checkpoint to resume from (the run was stopped "
            "before it wrote one; train with --checkpoint-every 1 to write one every epoch)"
        )
    errors = []
    for path in reversed(found):
        try:
            state, _ = load_checkpoint(path)
        except CheckpointError as e:
            errors.append(str(e))
            continue
        for message in errors:
            if warn is not None:
                warn(f"skipped a damaged checkpoint: {message}")
        return ResumeFrom(state, path)
    raise CheckpointError("no checkpoint can be loaded:\n  " + "\n  ".join(errors))


def load_learner_state(learner: Any, resume: ResumeFrom) -> None:
    """Put a checkpoint into a freshly built learner, refusing a mismatched model."""
    load_state_into(learner.model, resume.state["model"], resume.path)
    try:
        learner.load_state_dict(resume.state)
    except (ValueError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"{resume.path}: does not fit this run's learner: {e}") from None
