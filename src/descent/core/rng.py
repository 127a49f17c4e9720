"""Every random number generator in play, captured and restored: torch's, numpy's
and Python's. Checkpoints store them, so a resumed run draws the same numbers; the
learning-rate finder restores them, so running it first changes nothing. (The batch
order needs none: it is drawn from a generator seeded with (seed, epoch).)"""

from __future__ import annotations

import random

import numpy as np
import torch


def rng_state() -> dict:
    """The generators' states: tensors and plain values (checkpoints store them)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype("int64")),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": random.getstate(),
    }


def set_rng_state(state: dict) -> None:
    """Put back what rng_state returned."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype("uint32"), n["pos"], n["has_gauss"], n["gauss"])
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
