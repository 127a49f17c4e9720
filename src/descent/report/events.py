"""The events the page draws, as JSON: the schema's encoders, shared by the live page
(watch/ appends them to its log) and report.html (report/html.py inlines them).

    run       title, task ("classify" | "fit" | "train" | "sweep" | "groups"), config, ...
    epoch     record (the learner's per-epoch dict of floats), steps, lr
    batch     x (epochs as a fraction), step, loss (mean since the last point), lr
    weights   epoch, shape [k, h, w], scale [k], data (base64 int8), labels
    data      x, y (the points a curve is fitted to)
    curve     epoch, x, y (the fitted function on a grid)
    params    epoch, values {name: float}
    sweep     epoch, lrs, monitor, values (per rate, None once diverged), diverged
    end       stopped, message, epochs, steps, final {...}
    note      text (e.g. "stop requested from the page")
    groups    step, names, n_groups, counts, rows, samples (fit --by: watch/groups.py)
    group_data  samples (group, x, y): the points of the groups the page draws

Every event has `type` and `run` (one page overlays several runs); non-finite floats
become null when encoded (JSON has no NaN). torch is imported only by the functions
that take tensors: the server, which encodes, starts without it.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

MAX_IMAGES = 64  # weight images sent per event (an MLP's hidden layer may have more)


def encode(event: Mapping[str, Any]) -> str:
    """Compact JSON; NaN and infinities become null (JSON has no NaN)."""
    try:
        return json.dumps(event, separators=(",", ":"), allow_nan=False)
    except ValueError:
        return json.dumps(finite(event), separators=(",", ":"), allow_nan=False)


def finite(obj: Any) -> Any:
    """`obj` with every non-finite float replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def weight_images(
    weights: torch.Tensor,
    shape: tuple[int, int] | None = None,
    labels: Sequence[str] | None = None,
    limit: int = MAX_IMAGES,
) -> dict[str, Any]:
    """(k, n_pixels) weights -> a compact picture message: each row scaled by its
    largest magnitude to int8 (-127..127) and sent as base64, with that scale.

    {"shape": [k, h, w], "scale": [k floats], "data": base64, "labels": [k names]}
    """
    import torch

    w = weights.detach()[:limit].float().cpu()  # (k, n_pixels)
    w = torch.nan_to_num(w, nan=0.0, posinf=0.0, neginf=0.0)  # a diverged pixel draws white
    k, n = w.shape
    h, wd = shape if shape is not None else square(n)
    scale = w.abs().amax(dim=1)  # (k,)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(w / safe[:, None] * 127).clamp(-127, 127).to(torch.int8)  # (k, n_pixels)
    names = list(labels)[:k] if labels is not None and len(labels) >= k else None
    return {
        "shape": [k, h, wd],
        "scale": scale.tolist(),
        "data": base64.b64encode(q.numpy().tobytes()).decode("ascii"),
        "labels": names or [str(i) for i in range(k)],
    }


def square(n: int) -> tuple[int, int]:
    """(h, w) of an image of n pixels: square when n is a square, else one row."""
    side = math.isqrt(n)
    return (side, side) if side * side == n else (1, n)


def floats(values: torch.Tensor | Sequence[float]) -> list[float]:
    """A tensor or sequence of numbers as a flat list of Python floats."""
    if hasattr(values, "detach"):  # a tensor
        return values.detach().reshape(-1).double().cpu().tolist()
    return [float(v) for v in values]


def subsample(x: list, y: list, limit: int) -> tuple[list, list]:
    """At most `limit` (x, y) pairs, evenly spaced through the lists."""
    if len(x) <= limit:
        return x, y
    step = len(x) / limit
    idx = [int(i * step) for i in range(limit)]
    return [x[i] for i in idx], [y[i] for i in idx]
