"""Every file descent writes or reads: JSON, text, tensors (safetensors).

Writes are atomic: the bytes go to a temporary file in the same folder, are
fsync'd, and the file is renamed over the target, so a reader (or a resumed run)
sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from itertools import chain
from pathlib import Path
from typing import Any

import torch

from descent.errors import CheckpointError, DescentError


def _file_mode() -> int:
    """The mode a plain open() would give a new file (0o666 less the umask);
    mkstemp's own 0o600 would hide run files from the user's group."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_MODE = _file_mode()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` via a temporary file, fsync and rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, _MODE)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    """Atomic JSON; non-finite floats become null (JSON has no NaN)."""
    atomic_write_text(path, json.dumps(_finite(obj), indent=2, allow_nan=False) + "\n")


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """Parse a JSON file; a CheckpointError names the file when it cannot be read."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such {what}") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read the {what}: {e.strerror}") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(
            f"{path}: not a valid {what} ({e}); it may be truncated or of another format"
        ) from None


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


class RunDir:
    """A run's folder: config.json, metrics.csv, plots/, model and checkpoint files.

    A run can be repeated, resumed and reported from this folder alone."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise CheckpointError(
                f"{self.path} exists and is not a directory: choose another --out"
            )
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CheckpointError(
                f"{self.path}: cannot create the run directory: {e.strerror}"
            ) from None

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    def listing(self, first: tuple[str, ...] = ("config.json", "metrics.csv")) -> str:
        """What the folder holds, for a summary line: `first` (those present) in that
        order, then the other files by name, then the subfolders but plots/ (with a
        slash). Listed from the disk, so the line is true whatever the run wrote."""
        entries = sorted(self.path.iterdir(), key=lambda e: e.name)
        files = [e.name for e in entries if e.is_file() and not e.name.startswith(".")]
        dirs = [e.name + "/" for e in entries if e.is_dir() and e.name != "plots"]
        ordered = [n for n in first if n in files] + [n for n in files if n not in first]
        return " ".join(ordered + dirs)

    def plot_listing(self, made: list[Path]) -> str:
        """The plots of this run, those in `made` first (in the order made), then any
        others in plots/ (the learning-rate finder's, say); "" when there are none."""
        names = [q.name for q in made]
        if self.plots.is_dir():
            others = (q.name for q in self.plots.iterdir() if q.is_file())
            names += sorted(n for n in others if n not in names)
        return " ".join(names)

    def write_config(self, config: dict) -> Path:
        write_json(self.file("config.json"), config)
        return self.file("config.json")

    def __str__(self) -> str:
        return str(self.path)


# -- models: model.safetensors + model.json --------------------------------------------

MODEL_FORMAT = "descent-model"
MODEL_VERSION = 1


def _looks_pickled(raw: bytes) -> bool:
    """A pickle (protocol 2-5 starts 0x80 0x02..0x05) or torch.save's zip archive,
    and not a safetensors file (an 8-byte little-endian header length, then '{')."""
    if raw[8:9] == b"{":
        return False
    return raw.startswith(b"PK\x03\x04") or (raw[:1] == b"\x80" and raw[1:2] in b"\x02\x03\x04\x05")


def _tensor_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save

    return save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})


def load_tensors(path: str | Path, what: str = "tensor file") -> dict[str, torch.Tensor]:
    """Read a safetensors file, refusing anything else with a message naming it.

    Nothing is unpickled: a pickle or torch.save payload is recognised by its
    first bytes and refused."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such {what}") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read the {what}: {e.strerror}") from None
    if _looks_pickled(raw):
        raise CheckpointError(
            f"{path}: this is a pickle (torch.save) file, not safetensors; descent never "
            "loads pickles, because loading one can run arbitrary code"
        )
    if len(raw) < 8:
        raise CheckpointError(f"{path}: only {len(raw)} bytes: the {what} is truncated or empty")
    try:
        return load(raw)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise CheckpointError(
            f"{path}: not a valid safetensors {what} ({e}); it may be truncated or corrupt"
        ) from None


def model_description(model: torch.nn.Module) -> dict:
    """kind, constructor arguments and parameter shapes: how to rebuild `model`."""
    return {
        "format": MODEL_FORMAT,
        "version": MODEL_VERSION,
        "kind": model.kind,
        "args": model.config(),
        "tensors": {k: list(v.shape) for k, v in model.state_dict().items()},
        # the first parameter's dtype (a model without parameters: its first buffer's)
        "dtype": str(next(chain(model.parameters(), model.buffers())).dtype).removeprefix("torch."),
    }


def save_model(model: torch.nn.Module, folder: str | Path, **meta: Any) -> Path:
    """Write `model.safetensors` and `model.json` (description + `meta`, e.g.
    preprocessing and labels) into `folder`; the JSON is written last, so a
    model.json always describes a complete tensor file."""
    folder = Path(folder)
    atomic_write_bytes(folder / "model.safetensors", _tensor_bytes(model.state_dict()))
    write_json(folder / "model.json", {**model_description(model), **meta})
    return folder / "model.json"


def build_model(desc: dict, source: Path) -> torch.nn.Module:
    """A fresh model from a model.json description (parameters not loaded)."""
    from descent.models import MODEL_KINDS

    if not isinstance(desc, dict) or desc.get("format") != MODEL_FORMAT:
        raise CheckpointError(
            f'{source}: not a descent model description (expected "format": "{MODEL_FORMAT}")'
        )
    version = desc.get("version")
    if version != MODEL_VERSION:
        raise CheckpointError(
            f"{source}: model format version {version!r}; this descent reads version "
            f"{MODEL_VERSION} (upgrade descent, or retrain)"
        )
    kind = desc.get("kind")
    if kind not in MODEL_KINDS:
        raise CheckpointError(
            f"{source}: unknown model kind {kind!r}; known: {', '.join(MODEL_KINDS)}"
        )
    args = desc.get("args")
    try:
        model = MODEL_KINDS[kind](**args)
    except (TypeError, ValueError, DescentError) as e:
        raise CheckpointError(
            f"{source}: cannot rebuild the {kind} model from its args: {e}"
        ) from None
    dtype = getattr(torch, str(desc.get("dtype", "float32")), None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise CheckpointError(f"{source}: unknown dtype {desc.get('dtype')!r}")
    return model.to(dtype)


def load_state_into(model: torch.nn.Module, tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Copy `tensors` into `model`, refusing missing, extra or misshapen tensors."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"{source}: tensors do not match the model: missing {missing or 'none'}, "
            f"unexpected {extra or 'none'}"
        )
    for name, value in tensors.items():
        if tuple(value.shape) != tuple(expected[name].shape):
            raise CheckpointError(
                f"{source}: tensor {name!r} has shape {tuple(value.shape)}, the model needs "
                f"{tuple(expected[name].shape)}"
            )
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()})


def load_model(folder: str | Path) -> tuple[torch.nn.Module, dict]:
    """Rebuild a model from `folder/model.json` + `folder/model.safetensors` alone.

    Returns (model in eval mode, the description dict). Nothing read is unpickled,
    imported or executed."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such run directory")
    desc = read_json(folder / "model.json", "model description")
    model = build_model(desc, folder / "model.json")
    tensors = load_tensors(folder / "model.safetensors", "model file")
    load_state_into(model, tensors, folder / "model.safetensors")
    return model.eval(), desc


# -- training state: checkpoints/ckpt-<epochs>-<batches>.safetensors + .json ------------

CHECKPOINT_FORMAT = "descent-checkpoint"
CHECKPOINT_VERSION = 1


def rng_state() -> dict:
    """Every random number generator in play: torch's, numpy's and Python's. (The batch
    order needs none: it is drawn from a generator seeded with (seed, epoch).)"""
    import random

    import numpy as np

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype("int64")),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },  # fmt: skip
        "python": random.getstate(),
    }


def set_rng_state(state: dict) -> None:
    import random

    import numpy as np

    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype("uint32"), n["pos"], n["has_gauss"], n["gauss"])
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


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
    import hashlib

    folder = Path(folder)
    name = checkpoint_name(state)
    tensors: dict[str, torch.Tensor] = {}
    body = _encode(state, "state", tensors)
    data = _tensor_bytes(tensors)
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
    import hashlib

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
