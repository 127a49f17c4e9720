"""Bounds on parameters (`--bounds NAME=LO:HI`, repeatable or comma-separated).

The solver keeps LO <= b <= HI by a projected, active-set Levenberg-Marquardt step
(levenberg.LevenbergMarquardt(bounds=...)): a parameter the optimum would push past
a bound ends exactly on it. Such a parameter is flagged: its standard error, from
the curvature at a point that is not a stationary point, is not meaningful there
(lmfit says the same of its own bounded parameters).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import torch

from descent.errors import ConfigError

Bounds = dict[str, tuple[float, float]]
AT_BOUND_NOTE = "at its {side} bound: the standard error is not meaningful there"


def parse_bounds(
    specs: str | Iterable[str] | Mapping[str, tuple[float, float]] | None, names: Sequence[str]
) -> Bounds:
    """{'a': (0.0, inf), 'k': (0.5, 2.0)} from "a=0:inf,k=0.5:2" (or a list of such
    strings, or a mapping {name: (lo, hi)}, checked by the same rules). LO or HI may be
    inf/-inf or empty (open). ConfigError names the item."""
    if specs is None:
        return {}
    if isinstance(specs, Mapping):
        specs = [f"{name}={_text(lo)}:{_text(hi)}" for name, (lo, hi) in specs.items()]
    items = [specs] if isinstance(specs, str) else list(specs)
    out: Bounds = {}
    for item in (part.strip() for spec in items for part in spec.split(",")):
        if not item:
            continue
        name, eq, rng = item.partition("=")
        name = name.strip()
        lo_text, colon, hi_text = rng.partition(":")
        if not eq or not colon:
            raise ConfigError(f"--bounds {item!r}: write NAME=LO:HI, e.g. a=0:inf or k=0.5:2")
        if name not in names:
            raise ConfigError(
                f"--bounds {item!r}: {name!r} is not a parameter; the parameters are "
                f"{', '.join(names)}"
            )
        if name in out:
            raise ConfigError(f"--bounds: {name} is bounded twice; give one range per parameter")
        lo = _number(lo_text, -math.inf, item)
        hi = _number(hi_text, math.inf, item)
        if not lo < hi:
            raise ConfigError(
                f"--bounds {item!r}: the lower bound {lo:g} is not below the upper bound "
                f"{hi:g}; write LO:HI with LO < HI (to hold a parameter, use --fix {name}=VALUE)"
            )
        out[name] = (lo, hi)
    return out


def _text(v: float | str | None) -> str:
    return "" if v is None else str(v)


def _number(text: str, empty: float, item: str) -> float:
    text = text.strip()
    if not text:
        return empty
    try:
        v = float(text)
    except ValueError:
        raise ConfigError(
            f"--bounds {item!r}: {text!r} is not a number (inf and -inf are allowed)"
        ) from None
    if v != v:
        raise ConfigError(f"--bounds {item!r}: a bound cannot be nan")
    return v


def bound_vectors(bounds: Mapping[str, tuple[float, float]], names: Sequence[str]):
    """(lower, upper): float64 (p,) tensors in `names` order, +-inf where unbounded."""
    lo = [bounds.get(n, (-math.inf, math.inf))[0] for n in names]
    hi = [bounds.get(n, (-math.inf, math.inf))[1] for n in names]
    return torch.tensor(lo, dtype=torch.float64), torch.tensor(hi, dtype=torch.float64)


def check_inside(start: Mapping[str, float], bounds: Mapping[str, tuple[float, float]]) -> None:
    """ConfigError when a starting value lies outside its bounds."""
    for name, (lo, hi) in bounds.items():
        v = start[name]
        if not lo <= v <= hi:
            raise ConfigError(
                f"the start {name} = {v:g} lies outside --bounds {name}={lo:g}:{hi:g}; "
                f"choose a start inside the range (--init {name}=VALUE) or widen the bounds"
            )


def at_bounds(
    values: Mapping[str, float], bounds: Mapping[str, tuple[float, float]], rtol: float = 1e-9
) -> dict[str, str]:
    """{name: 'lower' | 'upper'} for the parameters that end on (within rtol of) a bound."""
    out = {}
    for name, (lo, hi) in bounds.items():
        v = values[name]
        for side, edge in (("lower", lo), ("upper", hi)):
            if math.isfinite(edge) and abs(v - edge) <= rtol * max(abs(edge), abs(v), 1e-300):
                out[name] = side
    return out
