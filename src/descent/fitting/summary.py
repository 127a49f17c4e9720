"""A curve fit's results as plain JSON-ready values: what summary.json, `--json` and the
printed report (report/fit_text.py) say about the parameters and the fit's quality.

Keys (names as lmfit's where it has them): params, stderr, fixed, free, bounds
({name: [lo, hi]}, null where open), at_bound ({name: "lower" | "upper"}), stderr_note,
correlation and covariance ({"names": free, "matrix": ..., "note"}) over the free
parameters,
intervals and profile_intervals ({name: [{"probability", "low", "high"}, ...]}; null
where a profile does not reach the level inside the bounds), chisqr, redchi, aic, bic,
nvarys, nfree, weighted, absolute_sigma, rss (unweighted), r2, n, dof.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from descent.fitting.curve import CurveFit
from descent.fitting.profile import ProfileInterval


def curve_summary(fit: CurveFit, profile: Mapping[str, ProfileInterval] | None = None) -> dict:
    st = fit.statistics
    out = {
        "params": fit.params,
        "stderr": fit.stderr,
        "free": list(fit.free),
        "fixed": dict(fit.fixed),
        "bounds": {n: [_open(lo), _open(hi)] for n, (lo, hi) in fit.bounds.items()},
        "at_bound": dict(fit.at_bound),
        "stderr_note": fit.stderr_note,
        "correlation": fit.correlation,
        "covariance": {
            "names": list(st.names),
            "matrix": st.covariance.tolist(),
            "note": st.note,  # why it is NaN, or ""
        },
        "intervals": _intervals(fit.intervals()),
        "chisqr": st.chisqr,
        "redchi": st.redchi,
        "aic": st.aic,
        "bic": st.bic,
        "nvarys": st.nvarys,
        "nfree": st.nfree,
        "weighted": fit.sigma is not None,
        "absolute_sigma": fit.absolute_sigma,
        "rss": fit.rss,
        "r2": fit.r2,
        "n": fit.n,
        "dof": st.nfree,
    }
    if profile is not None:
        out["profile_intervals"] = _intervals({n: p.intervals for n, p in profile.items()})
    return out


def _open(v: float) -> float | None:
    """None for an open end (+-inf); NaN stays NaN (not estimable; null in JSON too)."""
    return None if math.isinf(v) else v


def _intervals(by_name: Mapping[str, list[tuple[float, float, float]]]) -> dict:
    return {
        name: [{"probability": p, "low": _open(lo), "high": _open(hi)} for p, lo, hi in rows]
        for name, rows in by_name.items()
    }
