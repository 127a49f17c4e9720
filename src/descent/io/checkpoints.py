"""Training checkpoints: checkpoints/ckpt-e<epochs>-b<batches>.safetensors + .json.

A checkpoint is a Learner.state_dict(): its tensors in safetensors, the rest as JSON
that refers to them by key, with `meta` (the run's id). The JSON is written last (the
commit point) and holds one SHA-256 over its own canonical body and the tensor file's
bytes, so a checkpoint is complete or absent, and a damaged or edited one, JSON or
tensors, is recognised. What loads is then checked field by field (position, history,
model, optimizer settings) and against the learner it is put into.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from descent.core.events import StopReason
from descent.errors import CheckpointError
from descent.io.files import atomic_write_bytes, atomic_write_text, read_json
from descent.io.models import load_state_into, load_tensors, tensor_bytes
from descent.io.optimizer_state import check_optimizer_state
from descent.io.schemas import matches

CHECKPOINT_FORMAT = "descent-checkpoint"
CHECKPOINT_VERSION = 2  # 2: the SHA-256 covers the JSON too, and meta holds the run id


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
        key = obj["__tensor__"]
        if not isinstance(key, str) or key not in tensors:
            raise CheckpointError(
                f"{source}: refers to tensor {key!r:.60}, which its tensor file lacks"
            )
        return tensors[key]
    if "__float__" in obj:
        return float(obj["__float__"]) if obj["__float__"] in ("nan", "inf", "-inf") else math.nan
    if "__tuple__" in obj:
        if not isinstance(obj["__tuple__"], list):
            raise CheckpointError(f"{source}: a __tuple__ that is not a list")
        return tuple(_decode(v, tensors, source) for v in obj["__tuple__"])
    if "__items__" in obj:
        items = obj["__items__"]
        if not (
            isinstance(items, list) and all(isinstance(i, list) and len(i) == 2 for i in items)
        ):
            raise CheckpointError(f"{source}: an __items__ that is not a list of [key, value]")
        decoded = [(_decode(k, tensors, source), _decode(v, tensors, source)) for k, v in items]
        if not all(isinstance(k, (str, int, float, bool, tuple)) or k is None for k, _ in decoded):
            raise CheckpointError(f"{source}: an __items__ key that cannot be a key")
        return dict(decoded)
    return {k: _decode(v, tensors, source) for k, v in obj.items()}


def checkpoint_name(state: dict) -> str:
    return f"ckpt-e{state['epochs_done']:06d}-b{state['batches_done']:06d}"


def _digest(body: dict, data: bytes) -> str:
    """SHA-256 over the checkpoint's JSON body (canonical: sorted keys, no spaces) and
    its tensor file's bytes."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode() + b"\n" + data).hexdigest()


def save_checkpoint(folder: str | Path, state: dict, meta: dict | None = None) -> Path:
    """Write a learner state_dict as <name>.safetensors, then <name>.json (the commit
    point: it holds the SHA-256 of its own body and the tensor file). Returns the JSON's
    path."""
    folder = Path(folder)
    name = checkpoint_name(state)
    tensors: dict[str, torch.Tensor] = {}
    body = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "tensors": f"{name}.safetensors",
        "meta": meta or {},
        "state": _encode(state, "state", tensors),
    }
    data = tensor_bytes(tensors)
    atomic_write_bytes(folder / f"{name}.safetensors", data)
    doc = {**body, "sha256": _digest(body, data)}
    atomic_write_text(folder / f"{name}.json", json.dumps(doc, allow_nan=False) + "\n")
    return folder / f"{name}.json"


def load_checkpoint(path: str | Path) -> tuple[dict, dict]:
    """(state, meta) from a checkpoint's JSON and its tensor file, checked: format and
    version, the SHA-256 over both (truncated, edited or swapped files are refused),
    then the state's fields."""
    path = Path(path)
    doc = read_json(path, "checkpoint")
    if not isinstance(doc, dict) or doc.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f'{path}: not a descent checkpoint (expected "format": "{CHECKPOINT_FORMAT}")'
        )
    if doc.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {doc.get('version')!r:.20}; this descent reads version "
            f"{CHECKPOINT_VERSION}"
        )
    name = doc.get("tensors")
    tensor_file = path.parent / str(name)
    if (
        not isinstance(name, str)
        or tensor_file.parent != path.parent
        or not name.endswith(".safetensors")
    ):
        raise CheckpointError(f"{path}: names an unexpected tensor file {name!r:.60}")
    try:
        raw = tensor_file.read_bytes()
    except OSError:
        raise CheckpointError(
            f"{tensor_file}: missing; the checkpoint {path.name} is incomplete"
        ) from None
    body = {k: v for k, v in doc.items() if k != "sha256"}
    if _digest(body, raw) != doc.get("sha256"):
        raise CheckpointError(
            f"{path}: its SHA-256 does not match its JSON and {tensor_file.name}: one of them "
            "was truncated, edited, corrupted or replaced"
        )
    tensors = load_tensors(tensor_file, "checkpoint tensor file")
    state = _decode(doc.get("state"), tensors, path)
    meta = doc.get("meta")
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: field 'meta' must be an object")
    check_state(state, path)
    return state, meta


# field -> the annotation it must match (io/schemas.py), for check_state
_STATE_FIELDS: dict[str, Any] = {
    "model": dict[str, torch.Tensor],
    "optimizer": dict[str, Any],
    "epochs_done": int,
    "batches_done": int,
    "train_losses": list[torch.Tensor],
    "steps": int,
    "best_epoch": int | None,
    "history": list[dict[str, Any]],  # numbers, NaN included (a diverged epoch's loss)
    "callbacks": dict[str, Any],
    "rng": dict[str, Any],
    "stopped": str | None,
    "stop_message": str,
}


def check_state(state: Any, path: Path) -> None:
    """A learner state's fields: their types, positions that agree with each other
    (one history record per epoch done, one loss per batch done) and optimizer settings
    that are finite and not negative."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: the checkpoint has no training state")
    for name, hint in _STATE_FIELDS.items():
        if name not in state or not matches(state[name], hint):
            raise CheckpointError(f"{path}: field 'state.{name}' is missing or of the wrong type")
    for i, record in enumerate(state["history"]):
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in
                      record.values())  # fmt: skip
        if not numbers or record.get("epoch") != i + 1 or "train_loss" not in record:
            raise CheckpointError(
                f"{path}: field 'state.history.{i}' must be the numbers of epoch {i + 1} "
                "(epoch, train_loss, ...)"
            )
    if not all(t.dim() == 0 and t.is_floating_point() for t in state["train_losses"]):
        raise CheckpointError(f"{path}: field 'state.train_losses' must hold one loss per batch")
    if state["stopped"] is not None and state["stopped"] not in set(StopReason):
        raise CheckpointError(f"{path}: field 'state.stopped' is not a reason a fit stops")
    best = state["best_epoch"]
    if best is not None and not 1 <= best <= state["epochs_done"]:
        raise CheckpointError(f"{path}: field 'state.best_epoch' {best} is not an epoch done")
    for name in ("epochs_done", "batches_done", "steps"):
        if state[name] < 0:
            raise CheckpointError(f"{path}: field 'state.{name}' is negative ({state[name]})")
    if len(state["history"]) != state["epochs_done"]:
        raise CheckpointError(
            f"{path}: field 'state.history' has {len(state['history'])} epochs, but "
            f"'state.epochs_done' says {state['epochs_done']}"
        )
    if len(state["train_losses"]) != state["batches_done"]:
        raise CheckpointError(
            f"{path}: field 'state.train_losses' has {len(state['train_losses'])} losses, but "
            f"'state.batches_done' says {state['batches_done']}"
        )
    groups = state["optimizer"].get("param_groups")
    if not matches(groups, list[dict[str, Any]]) or not isinstance(
        state["optimizer"].get("state"), dict
    ):
        raise CheckpointError(f"{path}: field 'state.optimizer' has no param_groups and state")
    for i, group in enumerate(groups):
        for key in ("lr", "momentum", "weight_decay", "dampening", "eps"):
            value = group.get(key)
            if value is not None and not (matches(value, float) and value >= 0):
                raise CheckpointError(
                    f"{path}: field 'state.optimizer.param_groups.{i}.{key}' must be a finite "
                    f"number, at least 0; got {value!r:.40}"
                )


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


def latest_checkpoint(run_dir: Path, run_id: str, warn=None) -> ResumeFrom:
    """The newest checkpoint in run_dir/checkpoints that loads and was written by the run
    `run_id`; older ones are tried when a newer one is damaged, and another run's are
    ignored (`warn(message)` is told about each one skipped)."""
    found = list_checkpoints(run_dir / "checkpoints")
    if not found:
        raise CheckpointError(
            f"{run_dir / 'checkpoints'}: no checkpoint to resume from (the run was stopped "
            "before it wrote one; train with --checkpoint-every 1 to write one every epoch)"
        )
    errors = []
    for path in reversed(found):
        try:
            state, meta = load_checkpoint(path)
        except CheckpointError as e:
            errors.append(f"skipped a damaged checkpoint: {e}")
            continue
        if meta.get("run_id") != run_id:
            errors.append(
                f"ignored {path}: written by another run (id {meta.get('run_id')!r:.40}), not "
                f"this folder's run (id {run_id})"
            )
            continue
        for message in errors:
            if warn is not None:
                warn(message)
        return ResumeFrom(state, path)
    raise CheckpointError("no checkpoint of this run can be loaded:\n  " + "\n  ".join(errors))


def load_learner_state(learner: Any, resume: ResumeFrom) -> None:
    """Put a checkpoint into a freshly built learner, refusing a mismatched model, a
    position past the end of an epoch and optimizer state of other shapes."""
    state, path = resume.state, resume.path
    load_state_into(learner.model, state["model"], path)
    batches = len(learner.train_batches)
    if state["batches_done"] > batches:
        raise CheckpointError(
            f"{path}: field 'state.batches_done' is {state['batches_done']}, but an epoch of "
            f"this run has {batches} batches"
        )
    check_optimizer_state(state["optimizer"], learner.opt, path)
    try:
        learner.load_state_dict(state, path)
    except (ValueError, KeyError, RuntimeError, TypeError, IndexError) as e:
        raise CheckpointError(f"{path}: does not fit this run's learner: {e}") from None
