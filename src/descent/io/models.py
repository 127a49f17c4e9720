"""Model files: model.safetensors (the tensors) + model.json (how to rebuild it).

Nothing read is unpickled, imported or executed: the JSON names a model kind from
models.MODEL_KINDS and its constructor arguments, and the tensors are safetensors.
"""

from __future__ import annotations

from itertools import chain
from pathlib import Path
from typing import Any

import torch

from descent.errors import CheckpointError, DescentError
from descent.io.files import atomic_write_bytes, read_json, write_json
from descent.io.limits import LOADING_COPIES, check_memory
from descent.io.schemas import check_model_args, matches
from descent.models import MODEL_KINDS

MODEL_FORMAT = "descent-model"
MODEL_VERSION = 1


def _looks_pickled(raw: bytes) -> bool:
    """A pickle (protocol 2-5 starts 0x80 0x02..0x05) or torch.save's zip archive,
    and not a safetensors file (an 8-byte little-endian header length, then '{')."""
    if raw[8:9] == b"{":
        return False
    return raw.startswith(b"PK\x03\x04") or (raw[:1] == b"\x80" and raw[1:2] in b"\x02\x03\x04\x05")


def tensor_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
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
    atomic_write_bytes(folder / "model.safetensors", tensor_bytes(model.state_dict()))
    write_json(folder / "model.json", {**model_description(model), **meta})
    return folder / "model.json"


def build_model(desc: dict, source: Path) -> torch.nn.Module:
    """A fresh model from a model.json description (parameters not loaded), checked
    first: format, version, kind, constructor arguments (types and bounds), dtype, and
    the tensor shapes they give against those recorded. The shapes come from a build on
    the meta device, so an absurd size is refused before anything is allocated."""
    if not isinstance(desc, dict) or desc.get("format") != MODEL_FORMAT:
        raise CheckpointError(
            f'{source}: not a descent model description (expected "format": "{MODEL_FORMAT}")'
        )
    version = desc.get("version")
    if version != MODEL_VERSION:
        raise CheckpointError(
            f"{source}: model format version {version!r:.20}; this descent reads version "
            f"{MODEL_VERSION} (upgrade descent, or retrain)"
        )
    kind = desc.get("kind")
    if not isinstance(kind, str) or kind not in MODEL_KINDS:
        raise CheckpointError(
            f"{source}: unknown model kind {kind!r:.40}; known: {', '.join(MODEL_KINDS)}"
        )
    cls = MODEL_KINDS[kind]
    args = check_model_args(cls, desc.get("args"), source)
    dtype = getattr(torch, str(desc.get("dtype", "float32")), None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise CheckpointError(f"{source}: field 'dtype': unknown dtype {desc.get('dtype')!r:.40}")
    recorded = desc.get("tensors")
    if not matches(recorded, dict[str, list[int]]):
        raise CheckpointError(f"{source}: field 'tensors' must map names to shapes (lists of ints)")

    def build() -> torch.nn.Module:
        return cls(**args).to(dtype)

    try:
        with torch.device("meta"):  # shapes without allocating
            meta = build().state_dict()
    except (TypeError, ValueError, RuntimeError, OverflowError, DescentError) as e:
        raise CheckpointError(
            f"{source}: cannot rebuild the {kind} model from its args: {e}"
        ) from None
    shapes = {k: list(v.shape) for k, v in meta.items()}
    need = sum(v.numel() * v.element_size() for v in meta.values()) * LOADING_COPIES
    if shapes != recorded:
        raise CheckpointError(
            f"{source}: field 'tensors' {_shapes(recorded)} does not match the shapes its args "
            f"give, {_shapes(shapes)}"
        )
    check_memory(need, f"{source}: the {kind} model", "it cannot be loaded here", CheckpointError)
    try:
        return build()
    except (TypeError, ValueError, RuntimeError, DescentError) as e:
        raise CheckpointError(
            f"{source}: cannot rebuild the {kind} model from its args: {e}"
        ) from None


def _shapes(shapes: dict) -> str:
    return ", ".join(f"{k} {tuple(v)}" for k, v in list(shapes.items())[:6]) or "none"


def load_state_into(model: torch.nn.Module, tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Copy `tensors` into `model`, refusing missing, extra, misshapen or non-finite
    tensors (a model with NaN weights would only ever predict NaN)."""
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
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise CheckpointError(
                f"{source}: tensor {name!r} holds {bad:,} values that are NaN or infinite; "
                "a model with them cannot predict (retrain, or resume from an earlier checkpoint)"
            )
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()})


def load_model(folder: str | Path) -> tuple[torch.nn.Module, dict]:
    """Rebuild a model from `folder/model.json` + `folder/model.safetensors` alone.

    Returns (model in eval mode, the description dict). Nothing read is unpickled,
    imported or executed."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such run directory")
    desc = read_json(folder / "model.json", "model description", max_bytes=16 * 2**20)
    model = build_model(desc, folder / "model.json")
    tensors = load_tensors(folder / "model.safetensors", "model file")
    load_state_into(model, tensors, folder / "model.safetensors")
    return model.eval(), desc
