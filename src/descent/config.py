"""Every default, once, with the reason beside it.

The CLI fills these dataclasses from its options; the library calls take them;
`config.json` in a run directory is `dataclasses.asdict` of one of them, which is
everything needed to repeat the run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class DemoConfig:
    out: str = "runs/demo"
    # The data's noise and the book's randn(3) start both come from this seed.
    seed: int = 42
    # The book's own settings for its first run: plain SGD, lr 1e-5, 10 steps.
    book_lr: float = 1e-5
    book_steps: int = 10
    # The converged fit: gradient descent on standardised time at lr = 1 / (largest
    # curvature), the largest step that cannot overshoot along any direction.
    # 10,000 epochs is far more than the ~200 it needs; the bound only guards.
    max_epochs: int = 10_000
    # Converged when the loss changes by less than 1e-12 (relative) over 10
    # epochs: float64 resolves it, and the fit is then exact to ~6 digits.
    rtol: float = 1e-12
    window: int = 10
    quiet: bool = False

    def to_dict(self) -> dict:
        return {"command": "demo", **asdict(self)}
