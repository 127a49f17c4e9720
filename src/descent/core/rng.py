"""Every random number generator in play, captured and restored: torch's, numpy's
and Python's. Checkpoints store them, so a resumed run draws the same numbers; the
learning-rate finder restores them, so running it first changes nothing. (The batch
order needs none: it is drawn from a generator seeded with (seed, epoch).)"""

from __future__ import annotations

import random
import sys

import torch


def rng_state() -> dict:
    """The generators' states: tensors and plain values (checkpoints store them).

    numpy's global generator is captured once numpy.random has been imported, and is
    None before: until then nothing can have drawn from it, and importing it only to
    read its state would cost a small job 30-70 ms."""
    np_random = sys.modules.get("numpy.random")
    numpy_state = None
    if np_random is not None:
        kind, keys, pos, has_gauss, gauss = np_random.get_state()
        numpy_state = {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype("int64")),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        }
    return {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}


def set_rng_state(state: dict) -> None:
    """Put back what rng_state returned."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    if n is not None:
        import numpy as np

        np.random.set_state(
            (n["kind"], n["keys"].numpy().astype("uint32"), n["pos"], n["has_gauss"], n["gauss"])
        )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
