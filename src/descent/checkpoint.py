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
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
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
