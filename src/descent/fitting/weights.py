"""Per-row standard uncertainties (`--sigma COL`): checked once, before any fit.

A weighted fit minimises chi-square = sum_i ((f(x_i, b) - y_i) / sigma_i)^2, so
Residuals(..., sigma=...) divides each residual by its sigma. With absolute sigmas
(curve_fit's absolute_sigma=True, lmfit's scale_covar=False) the covariance is
(J^T J)^-1 of the weighted Jacobian; with relative ones it is scaled by the reduced
chi-square (statistics.fit_statistics).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from descent.errors import DataError


def check_sigma(
    sigma: torch.Tensor,
    what: str = "sigma",
    n: int | None = None,
    row_of: Callable[[int], int] | None = None,
) -> torch.Tensor:
    """sigma as a float64 (n,) tensor, or DataError naming the first bad row (1-based,
    or `row_of(index)`, e.g. the file line): a missing (NaN), infinite, zero or negative
    uncertainty cannot weight a row. `what` names the source (the file, the column)."""
    sigma = torch.as_tensor(sigma).reshape(-1)
    if not sigma.is_floating_point():
        sigma = sigma.to(torch.float64)
    sigma = sigma.to(torch.float64)
    if n is not None and len(sigma) != n:
        raise DataError(f"{what}: {len(sigma)} uncertainties for {n} rows; give one per row")
    bad = (~torch.isfinite(sigma) | (sigma <= 0)).nonzero()
    if len(bad):
        k = int(bad[0])
        v = float(sigma[k])
        why = "missing" if v != v else f"{v:g}"
        count = f" (and {len(bad) - 1} more rows)" if len(bad) > 1 else ""
        row = k + 1 if row_of is None else row_of(k)
        raise DataError(
            f"{what}: row {row} has an uncertainty of {why}{count}; every sigma must be a "
            "positive, finite number: fix or leave out that row, or fit without weights"
        )
    return sigma
