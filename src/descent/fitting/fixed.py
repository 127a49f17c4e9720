"""Fixed parameters (`--fix NAME=VALUE`, lmfit's vary=False): held at a value.

The solver sees only the free parameters: `FreeParameters.function(f)` is f with
the fixed values put back in place, so the Jacobian has one column per free
parameter and the degrees of freedom are n - (number of free parameters).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import torch

from descent.errors import ConfigError


def parse_fixed(
    specs: str | Iterable[str] | Mapping[str, float] | None, names: Sequence[str]
) -> dict[str, float]:
    """{'c': 0.5} from "c=0.5" (or a list of such, a comma list, or a mapping {name:
    value}, checked by the same rules); ConfigError names the item when the name is not
    a parameter or the value not a finite number."""
    if specs is None:
        return {}
    if isinstance(specs, Mapping):
        specs = [f"{name}={v}" for name, v in specs.items()]
    items = [specs] if isinstance(specs, str) else list(specs)
    out: dict[str, float] = {}
    for item in (part.strip() for spec in items for part in spec.split(",")):
        if not item:
            continue
        name, eq, text = (s.strip() for s in item.partition("="))
        if not eq:
            raise ConfigError(f"--fix {item!r}: write NAME=VALUE, e.g. c=0.5")
        if name not in names:
            raise ConfigError(
                f"--fix {item!r}: {name!r} is not a parameter; the parameters are "
                f"{', '.join(names)}"
            )
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f"--fix {item!r}: {text!r} is not a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"--fix {item!r}: a fixed value must be finite")
        if name in out:
            raise ConfigError(
                f"--fix: {name} is fixed twice ({out[name]:g} and {value:g}); give one value"
            )
        out[name] = value
    if len(out) == len(names):
        raise ConfigError(
            f"--fix holds every parameter ({', '.join(names)}): nothing is left to fit; "
            "leave at least one free"
        )
    return out


class FreeParameters:
    """The split of `names` into free parameters (fitted) and fixed ones (held)."""

    def __init__(self, names: Sequence[str], fixed: dict[str, float] | None = None) -> None:
        self.names = list(names)
        self.fixed = dict(fixed or {})
        self.free = [n for n in self.names if n not in self.fixed]

    def function(self, f: Callable) -> Callable:
        """f_free(x, b_free) = f(x, b) with b_i = the fixed value where i is fixed.

        b_free is a (p_free,) tensor or a tuple of p_free tensors (the per-observation
        rows of levenberg.Residuals); fixed values enter as 0-dim float64 tensors on the
        free parameters' device; x is passed through as it is."""
        if not self.fixed:
            return f
        consts = {n: torch.tensor(v, dtype=torch.float64) for n, v in self.fixed.items()}

        def f_free(x, b_free) -> torch.Tensor:
            free = list(b_free) if isinstance(b_free, (tuple, list)) else b_free.unbind()
            rows, device = iter(free), free[0].device
            full = [consts[n].to(device) if n in consts else next(rows) for n in self.names]
            return f(x, full)

        return f_free

    def full(self, free_values: Sequence[float]) -> dict[str, float]:
        """{name: value} for every parameter, in formula order."""
        it = iter(free_values)
        return {n: self.fixed[n] if n in self.fixed else float(next(it)) for n in self.names}
