"""Every file read back is checked: types from the Python annotations of what it
rebuilds, bounds from options.py, and lengths and sizes against each other. Each
message names the file and the field.

    kwargs = dataclass_fields(TrainConfig, raw, path)   # types of every field
    check_classifier(desc, model, path)                 # labels and preprocessing
"""

from __future__ import annotations

import collections.abc
import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any

from descent.errors import CheckpointError, ConfigError
from descent.options import AT_LEAST, AT_MOST, check_bounds

_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def matches(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a type annotation (bool is not an int, an int is a
    float, numbers are finite, lists and dicts are checked item by item)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, a) for a in args)
    if hint is type(None) or hint is None:
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        )
    if hint is str:
        return isinstance(value, str)
    if origin in (list, collections.abc.Sequence):
        return isinstance(value, list) and all(matches(v, args[0]) for v in value)
    if origin in (dict, collections.abc.Mapping):
        return isinstance(value, dict) and all(
            isinstance(k, str) and matches(v, args[1]) for k, v in value.items()
        )
    if origin is typing.Literal:
        return value in args
    return isinstance(hint, type) and isinstance(value, hint)  # a tensor in a checkpoint


def describe(hint: Any) -> str:
    """'an integer', 'a list of strings or null', ... for messages."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        parts = [describe(a) for a in args if a is not type(None) and describe(a)]
        return " or ".join(parts) + (" or null" if type(None) in args else "")
    if origin in (list, collections.abc.Sequence):
        return f"a list of {describe(args[0]).removeprefix('a ').removeprefix('an ')}s"
    if origin in (dict, collections.abc.Mapping):
        return f"an object of {describe(args[1]).removeprefix('a ').removeprefix('an ')}s"
    return _NAMES.get(hint, "")


def dataclass_fields(cls: type, raw: dict, path: Path) -> dict:
    """The fields of dataclass `cls` in `raw`, each checked against its annotation;
    unknown names are refused. Missing fields keep their defaults."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise CheckpointError(f"{path}: unknown fields {unknown}; known: {', '.join(names)}")
    for name in names:
        if name in raw and not matches(raw[name], hints[name]):
            raise CheckpointError(
                f"{path}: field {name!r} must be {describe(hints[name])}, got {raw[name]!r:.80}"
            )
    return {n: raw[n] for n in names if n in raw}


def check_field_bounds(values: dict, path: Path, prefix: str = "") -> None:
    """The bounds of options.py (AT_LEAST, AT_MOST) on the fields of `values` that
    have them, as a CheckpointError naming the file and the field."""
    for name in AT_LEAST.keys() | AT_MOST.keys():
        if values.get(name) is not None:
            try:
                check_bounds(name, values[name])
            except ConfigError as e:
                raise CheckpointError(f"{path}: field '{prefix}{name}': {e}") from None


def check_model_args(cls: type, args: object, path: Path) -> dict:
    """A model's constructor arguments from model.json: the names its constructor
    takes, of the annotated types, sizes at least 1 and options.py's bounds."""
    if not isinstance(args, dict):
        raise CheckpointError(f"{path}: field 'args' must be an object of constructor arguments")
    hints = typing.get_type_hints(cls.__init__)
    unknown = sorted(set(args) - set(hints) - {"return"})
    if unknown:
        raise CheckpointError(f"{path}: args {unknown} are not arguments of {cls.__name__}")
    for name, value in args.items():
        if not matches(value, hints[name]):
            raise CheckpointError(
                f"{path}: field 'args.{name}' must be {describe(hints[name])}, got {value!r:.80}"
            )
        if hints[name] is int and name not in AT_LEAST and value < 1:
            raise CheckpointError(f"{path}: field 'args.{name}' is a size: at least 1, got {value}")
    check_field_bounds(args, path, prefix="args.")
    return args


def check_classifier(desc: dict, model: Any, path: Path) -> tuple[list[str], dict]:
    """labels and preprocessing of an image classifier's model.json, checked against the
    model: one label per output (two for a single output), and images of
    preprocessing.size (h, w positive, h * w pixels). Returns (labels, preprocessing)."""
    labels, pre = desc.get("labels"), desc.get("preprocessing")
    if labels is None or pre is None:
        raise CheckpointError(
            f"{path}: not an image classifier (no labels or preprocessing recorded); "
            "`descent predict` is for models made by `descent train`"
        )
    outputs = getattr(model, "n_outputs", getattr(model, "n_classes", None))
    wanted = 2 if outputs == 1 else outputs
    if not matches(labels, list[str]) or len(set(labels)) != len(labels) or not labels:
        raise CheckpointError(f"{path}: field 'labels' must be a list of distinct strings")
    if wanted is not None and len(labels) != wanted:
        raise CheckpointError(
            f"{path}: field 'labels' has {len(labels)} labels, but the model has {outputs} "
            f"output{'s' if outputs != 1 else ''} (it needs {wanted})"
        )
    if not isinstance(pre, dict) or not matches(pre.get("size"), list[int]):
        raise CheckpointError(f"{path}: field 'preprocessing.size' must be [height, width]")
    size = pre["size"]
    if len(size) != 2 or min(size) < 1:
        raise CheckpointError(
            f"{path}: field 'preprocessing.size' must be two positive integers, got {size}"
        )
    pixels = getattr(model, "n_pixels", None)
    if pixels is not None and size[0] * size[1] != pixels:
        raise CheckpointError(
            f"{path}: field 'preprocessing.size' {size[0]}x{size[1]} is {size[0] * size[1]:,} "
            f"pixels, but the model takes {pixels:,}"
        )
    if not isinstance(pre.get("deskew"), bool):
        raise CheckpointError(f"{path}: field 'preprocessing.deskew' must be true or false")
    return labels, pre
