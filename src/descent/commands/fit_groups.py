"""`descent fit --by COL`: the formula fitted to every group of rows sharing a value of
COL, all groups at once (fitting/many.py's fit_many, one vectorised Levenberg-Marquardt),
with one run folder: config.json, groups.csv (a row per group), summary.json,
plots/groups.png (a sample of the groups) and report.html.

Labels are read as text (names or numbers, in the file's order of first appearance)
and become integer codes; groups may have any number of rows. A group that cannot be
fitted (fewer rows than free parameters, a start where the formula is not finite) is
reported as failed, with its reason, and the others are fitted. --by takes --sigma,
--absolute-sigma, --fix, --bounds (each group kept inside, as its own fit would be;
groups.csv's at_bound column names the parameters that end on a bound) and --watch
(watch/groups.py: the groups' table and a few curves, live); options it cannot
honour are refused before anything is read (options.check_group_options). The fit
runs on --device (auto: CUDA when there is one, else the CPU; its float64 steps have no
MPS kernels, so auto skips MPS and --device mps is refused, as for every fit).

Ctrl-C, SIGTERM or the page's Stop end the fit at the next step: groups.csv and
summary.json are written with the finished groups' results and the others'
current values ("interrupted", no standard errors), summary.json says why, and the
command exits 130 (143 for SIGTERM).
"""

from __future__ import annotations

import csv
import io
import signal
import time
from dataclasses import dataclass, replace

import torch
from rich.console import Console

from descent.commands.config import FitConfig, check_options
from descent.commands.fit import FitData, load_fit_data
from descent.commands.runs import (
    Finishing,
    NotedSignals,
    check_outputs,
    start_run,
    with_absolute_paths,
    write_summary,
)
from descent.core.events import CancelFit, StopReason
from descent.data.table_rows import read_text_column
from descent.distributed.devices import resolve_device
from descent.distributed.threads import set_threads
from descent.errors import DataError
from descent.fitting.bounds import check_inside, parse_bounds
from descent.fitting.fixed import parse_fixed
from descent.fitting.many import ManyFits, fit_many
from descent.fitting.memory import retain_freed_memory
from descent.io.files import atomic_write_text
from descent.io.rundir import RunDir
from descent.models.formula import FormulaModel
from descent.report.fit_text import print_groups_summary
from descent.report.html import write_run_report
from descent.report.plots import plot_groups, save_figure
from descent.watch.groups import GroupSample, GroupsFeed
from descent.watch.session import WatchSession

SHOWN = 10  # groups printed in the summary table (failed ones are always shown)
PLOTTED = 12  # groups drawn in plots/groups.png
WATCHED = 6  # groups whose curves the live page draws


@dataclass
class GroupsCommandResult:
    """What `descent fit --by` did: the fits, their labels, the run folder, the summary."""

    fits: ManyFits
    labels: list[str]
    run_dir: RunDir
    summary: dict
    finish_signal: str | None = None  # a signal that came while the plots were drawn
    interrupted_by: str | None = None  # "SIGINT", "SIGTERM" or "page": the fit was cut short


def group_codes(cfg: FitConfig, dropped_rows: list[int], n_rows: int) -> tuple[torch.Tensor, list]:
    """(codes (n,), labels): the --by column of the rows read_table kept, as integer
    codes in order of first appearance; DataError names a row without a label."""
    column = read_text_column(cfg.data, cfg.by).without(dropped_rows)
    if len(column.values) != n_rows:
        raise DataError(
            f"{cfg.data}: the --by column {cfg.by!r} has {len(column.values)} rows, the "
            f"fitted columns {n_rows}: a row may be split across lines; check its quotes"
        )
    codes: dict[str, int] = {}
    out = []
    for line, label in zip(column.lines.tolist(), column.values, strict=True):
        if label is None:
            raise DataError(
                f"{cfg.data}: row {line} has no value in the --by column {cfg.by!r}; give "
                "every row a group, or leave that row out"
            )
        out.append(codes.setdefault(label, len(codes)))
    return torch.tensor(out, dtype=torch.int64), list(codes)


def check_group_sizes(by: str, codes: torch.Tensor, free: int) -> None:
    """Refuse, before the run folder is made, a --by column none of whose groups has the
    rows a fit needs (at least one per free parameter): every group would fail."""
    sizes = torch.bincount(codes)
    if int(sizes.max()) < free:
        raise DataError(
            f"--by {by}: none of its {len(sizes):,} groups has enough rows to fit: the "
            f"largest has {int(sizes.max())}, the formula has {free} free parameters; group "
            "by a column that puts more rows together, or hold parameters with --fix"
        )


def fit_groups_command(
    cfg: FitConfig,
    console: Console | None = None,
    *,
    overwrite: bool = False,
    watch: WatchSession | None = None,
) -> GroupsCommandResult:
    """`descent fit --by COL`: read the CSV, fit every group at once, write the run
    folder, print one summary table. The run folder (cfg.out) must be new or empty;
    `overwrite` replaces a previous descent run there."""
    console = console or Console(highlight=False, soft_wrap=True)
    say = (lambda *a, **k: None) if cfg.quiet else console.print
    check_options(cfg)  # before any file is read or written
    check_outputs(cfg, overwrite, resuming=False)
    cfg = with_absolute_paths(cfg)
    data = load_fit_data(cfg)
    formula = data.formula
    codes, labels = group_codes(cfg, data.dropped_rows, len(data.y))
    fixed = parse_fixed(cfg.fix, formula.params)
    bounds = {n: b for n, b in parse_bounds(cfg.bounds, formula.params).items() if n not in fixed}
    check_group_sizes(cfg.by, codes, len(formula.params) - len(fixed))
    start = FormulaModel(formula, cfg.init).values()
    start.update(fixed)
    check_inside({n: start[n] for n in bounds}, bounds)  # before the run folder is made
    data = _on_device(data, cfg.device)
    set_threads(cfg.threads)
    run, cfg = start_run(
        cfg, "fit", cfg.data, overwrite=overwrite,
        warn=lambda m: console.print(f"[yellow]warning:[/] {m}"),
    )  # fmt: skip
    try:
        job = (data, codes, labels, fixed, bounds, start)
        return _fit_groups(cfg, run, job, console, say, watch)
    finally:
        run.close()


def _on_device(data: FitData, name: str) -> FitData:
    """The columns moved to --device (auto: CUDA, else the CPU: float64 has no MPS)."""
    device = resolve_device(name, float64=True)
    if device == data.y.device:
        return data
    sigma = None if data.sigma is None else data.sigma.to(device)
    return replace(data, x=data.x.to(device), y=data.y.to(device), sigma=sigma)


class Interrupts(NotedSignals):
    """SIGINT and SIGTERM while the groups are fitted: noted (`signal`), so that the
    fit stops at its next step; a second Ctrl-C aborts at once (KeyboardInterrupt), as
    the learner's InterruptHandler does."""

    def _handle(self, signum: int, frame: object) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        super()._handle(signum, frame)


def _fit_groups(cfg, run, job, console, say, watch) -> GroupsCommandResult:
    data, codes, labels, fixed, bounds, start = job
    formula = data.formula
    say(
        f"[bold]descent fit[/] {cfg.data}: {cfg.y} = {formula.text}, inputs "
        f"{', '.join(formula.inputs)}, {len(data.y)} rows in {len(labels)} groups by {cfg.by}"
    )
    say(
        "solver: one vectorised Levenberg-Marquardt for every group (float64, per-group "
        f"damping and stop) on {data.y.device}"
    )
    retain_freed_memory()  # this process's steps reuse their buffers (fitting/memory.py)
    with Interrupts() as interrupts:
        feed = None
        if watch is not None:
            feed = GroupsFeed(
                watch.log, run.path.name, names=formula.params, labels=labels,
                samples=lambda: _samples(labels, codes, data), curve=formula,
                stop=watch.stop, interrupted=lambda: interrupts.signal, n_rows=len(data.y),
                title=f"fit {cfg.y} = {formula.text} by {cfg.by} · {run.path.name}",
                config=cfg.to_dict(), interval=watch.image_interval,
            )  # fmt: skip
        t0 = time.perf_counter()
        fits = fit_many(
            formula,
            data.x,
            data.y,
            codes.to(data.y.device),
            [start[n] for n in formula.params],
            formula.params,
            fixed=fixed,
            bounds=bounds,
            sigma=data.sigma,
            absolute_sigma=cfg.absolute_sigma,
            max_steps=cfg.epochs,
            on_step=feed if feed is not None else _stop_check(interrupts),
        )
        seconds = time.perf_counter() - t0
    interrupted_by = None
    if fits.message:
        interrupted_by = interrupts.signal or "page"
    rows = fits.rows(labels)
    atomic_write_text(run.file("groups.csv"), groups_csv(rows, formula.params))
    counts = {k: fits.stopped.count(k) for k in dict.fromkeys(fits.stopped)}
    message = fits.message
    if message:
        message += (
            f": {counts.get('interrupted', 0)} groups interrupted at their current values "
            "(not converged), the others' results as they finished"
        )
    summary = {
        "formula": formula.text,
        "y": cfg.y,
        "inputs": formula.inputs,
        "by": cfg.by,
        "n": len(data.y),
        "n_groups": len(labels),
        "stopped": counts,
        "message": message or "every group ran to its stop",
        "interrupted": bool(fits.message),
        "fixed": fixed,
        "bounds": {n: [_open(lo), _open(hi)] for n, (lo, hi) in bounds.items()},
        "sigma": cfg.sigma,
        "absolute_sigma": cfg.absolute_sigma,
        "seconds": seconds,
        "groups": rows,
        "run_dir": str(run),
    }
    write_summary(run, summary, cfg.json)
    if feed is not None:
        feed.end(rows, "interrupted" if fits.message else "finished", message, counts)
    print_groups_summary(console.print, rows, formula.params, SHOWN)
    say(f"  {len(labels)} groups fitted in {seconds:.3f} s")
    if fits.message:
        console.print(f"[yellow]{message}[/]")
    say(f"  run: {run}/ {run.listing()}")

    def drawings() -> list:  # after the numbers, cut short by a signal
        if not cfg.plots:
            return []
        fig = plot_groups(_panels(fits, labels, codes, data, formula), cfg.y, formula.text)
        return [save_figure(fig, run.plot("groups.png"))]

    with Finishing() as finishing:
        plots = finishing.draw(drawings)
        write_run_report(run.path, run.file("report.html"), run.own_plots())
    say(f"  report: {run.path / 'report.html'}")
    if made := run.plot_listing(plots):
        say(f"  plots: {run.plots}/ {made}")
    if finishing.signal is not None:
        console.print(finishing.note())
    return GroupsCommandResult(fits, labels, run, summary, finishing.signal, interrupted_by)


def _stop_check(interrupts: Interrupts):
    """fit_many's on_step without a page: a signal ends the fit at the next step."""

    def check(progress) -> None:
        if interrupts.signal is not None:
            raise CancelFit(
                StopReason.INTERRUPTED,
                f"interrupted by {interrupts.signal} at step {progress.step}",
            )

    return check


def _open(v: float) -> float | None:
    return v if abs(v) != float("inf") else None


def groups_csv(rows: list[dict], names: list[str]) -> str:
    """groups.csv: group, each parameter, its standard error, rss, n, stopped, reason,
    at_bound (the parameters that end on a bound, "k=upper a=lower"; their standard
    errors are not meaningful there)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["group", *names, *(f"{n}_stderr" for n in names), "rss", "n", "stopped", "reason",
         "at_bound"]
    )  # fmt: skip
    for r in rows:
        values = [r["params"][n] for n in names] + [r["stderr"][n] for n in names]
        at_bound = " ".join(f"{n}={side}" for n, side in r.get("at_bound", {}).items())
        writer.writerow(
            [r["group"], *(_cell(v) for v in values), _cell(r["rss"]), r["n"], r["stopped"],
             r.get("reason", ""), at_bound]
        )  # fmt: skip
    return out.getvalue()


def _cell(v: float) -> str:
    return repr(v) if v == v and abs(v) != float("inf") else ""


def _chosen(n: int, k: int) -> list[int]:
    """Up to k of n groups, evenly spread."""
    return list(range(n)) if n <= k else sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def _samples(labels, codes, data, k: int = WATCHED) -> list[GroupSample]:
    """The groups the live page draws: their points, and a grid of 100 points over
    their range (one input) or the rows themselves against their number (several)."""
    out = []
    for g in _chosen(len(labels), k):
        rows = (codes == g).nonzero().flatten().to(data.y.device)
        x, y = data.x[rows], data.y[rows]
        if data.x.dim() == 1:
            grid = torch.linspace(float(x.min()), float(x.max()), 100, dtype=torch.float64)
            grid, grid_x, shown_x = grid.to(x.device), grid, x
        else:
            grid, grid_x = x, torch.arange(len(y), dtype=torch.float64)
            shown_x = grid_x
        out.append(GroupSample(g, str(labels[g]), shown_x, y, grid, grid_x))
    return out


def _panels(fits: ManyFits, labels, codes, data, formula) -> list[dict]:
    """Up to PLOTTED groups, evenly spread (failed ones included): data and curve."""
    chosen = _chosen(len(labels), PLOTTED)
    one = data.x.dim() == 1
    panels = []
    for g in chosen:
        rows = (codes == g).nonzero().flatten().to(data.y.device)
        x, y = data.x[rows], data.y[rows]
        panel = {"title": f"{labels[g]} ({fits.stopped[g]})", "x": x, "y": y}
        if one and fits.stopped[g] != "failed":
            grid = torch.linspace(float(x.min()), float(x.max()), 200, dtype=torch.float64)
            with torch.no_grad():
                curve = formula(grid.to(x.device), fits.params[g].to(x.device))
            panel.update(curve_x=grid, curve_y=curve)
        elif fits.stopped[g] != "failed":  # several inputs: predictions against the row
            with torch.no_grad():
                panel.update(curve_y=formula(x, fits.params[g].to(x.device)))
        panels.append(panel)
    return panels
