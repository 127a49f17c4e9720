"""The printed report of `descent fit`: parameters with standard errors and intervals,
lmfit's statistics, and the run folder, from the summary dict (fitting/summary.py's
keys plus the command's), so that what is printed is what summary.json says."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

Say = Callable[[str], None]


def print_fit_summary(say: Say, s: dict, title: str, run_line: str, plots_line: str) -> None:
    """The report of one fit; `s` is the summary dict."""
    params, stderr, fixed, at_bound = s["params"], s["stderr"], s["fixed"], s["at_bound"]
    say(f"\n[bold]Fitted parameters[/] ({title})")
    width = max(len(k) for k in params)
    say(f"  {'':<{width}}  {'value':>16}  {'std error':>12}  {'rel.':>8}")
    for k, v in params.items():
        if k in fixed:
            say(f"  {k:<{width}}  {v:>16.10g}  {'-':>12}  {'-':>8}  fixed")
            continue
        e = stderr[k]
        rel = f"{100 * e / abs(v):.3g}%" if v and _finite(e) else "-"
        flag = f"  at {at_bound[k]} bound" if k in at_bound else ""
        say(f"  {k:<{width}}  {v:>16.10g}  {_g(e, 5):>12}  {rel:>8}{flag}")
    if s["covariance"]["note"]:
        say(f"  [yellow]warning:[/] standard errors cannot be estimated: {s['covariance']['note']}")
    for name, side in at_bound.items():
        say(
            f"  [yellow]note:[/] {name} is at its {side} bound: its standard error is not "
            "meaningful there"
        )
    weights = ""
    if s["weighted"]:
        how = "absolute" if s["absolute_sigma"] else "relative, covariance scaled by redchi"
        weights = f"   weighted by --sigma ({how})"
    say(
        f"  chi-square {_g(s['chisqr'], 10)}   reduced {_g(s['redchi'], 6)}   "
        f"AIC {s['aic']:.6g}   BIC {s['bic']:.6g}{weights}"
    )
    fixed_note = f" ({len(fixed)} fixed)" if fixed else ""
    say(
        f"  RSS {_g(s['rss'], 10)}   R² {s['r2']:.8f}   n {s['n']}, free parameters "
        f"{s['nvarys']}{fixed_note}, dof {s['nfree']}"
    )
    _print_intervals(say, s["intervals"], f"t, {s['nfree']} dof", width)
    if "profile_intervals" in s:
        _print_intervals(say, s["profile_intervals"], "profile likelihood", width)
    corr, names = s["correlation"], s["free"]
    strong = [
        f"{a}-{b} {corr[i][j]:+.3f}"
        for i, a in enumerate(names)
        for j, b in enumerate(names)
        if j > i and _finite(corr[i][j]) and abs(corr[i][j]) > 0.95
    ]
    if strong:
        say("  strongly correlated: " + ", ".join(strong))
    say(
        f"  {s['steps']} steps ({s['optimizer']}), {s['seconds']:.3f} s, "
        f"stopped: {s['stopped']} - {s['message']}"
    )
    say(run_line)
    if plots_line:
        say(plots_line)


def _print_intervals(say: Say, intervals: dict, how: str, width: int) -> None:
    if not intervals:
        return
    levels = [row["probability"] for row in next(iter(intervals.values()))]
    head = "".join(f"{_percent(p):>30}" for p in levels)
    say(f"  {'intervals':<{width}}{head}   ({how})")
    for name, rows in intervals.items():
        cells = "".join(f"{_span(r['low'], r['high']):>30}" for r in rows)
        say(f"  {name:<{width}}{cells}")


def print_groups_summary(say: Say, rows: Sequence[dict], names: Sequence[str], shown: int) -> None:
    """One table of a --by fit: a line per group (the first `shown` groups, then the
    failed ones), and a count of how each stopped."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["stopped"]] = counts.get(r["stopped"], 0) + 1
    label = max([5, *(len(str(r["group"])) for r in rows)])
    head = "".join(f"{n:>14}{'± se':>11}" for n in names)
    say(
        f"\n[bold]Groups[/] ({len(rows)}: " + ", ".join(f"{v} {k}" for k, v in counts.items()) + ")"
    )
    say(f"  {'group':<{label}}{head}  {'rss':>11}  {'n':>5}  stopped")
    failed = [r for r in rows if r["stopped"] == "failed"]
    chosen = list(rows[:shown]) + [r for r in failed if r not in rows[:shown]]
    for r in chosen:
        cells = "".join(f"{_g(r['params'][n], 7):>14}{_g(r['stderr'][n], 3):>11}" for n in names)
        why = f" ({r['reason']})" if r.get("reason") else ""
        if r.get("at_bound"):
            why += (
                " (" + ", ".join(f"{n} at {side} bound" for n, side in r["at_bound"].items()) + ")"
            )
        say(
            f"  {str(r['group']):<{label}}{cells}  {_g(r['rss'], 5):>11}  {r['n']:>5}  "
            f"{r['stopped']}{why}"
        )
    if len(chosen) < len(rows):
        say(f"  ... {len(rows) - len(chosen)} more groups in groups.csv")


def _g(v: float | None, digits: int) -> str:
    return "-" if v is None or not _finite(v) else f"{v:.{digits}g}"


def _finite(v: object) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _percent(p: float) -> str:
    return f"{100 * p:.3g}%"


def _span(lo: float | None, hi: float | None) -> str:
    """[lo, hi]; None is an open end (the profile did not reach the level), NaN "-"."""
    if (lo is not None and math.isnan(lo)) or (hi is not None and math.isnan(hi)):
        return "-"
    low = "-inf" if lo is None else f"{lo:.6g}"
    high = "inf" if hi is None else f"{hi:.6g}"
    return f"[{low}, {high}]"
