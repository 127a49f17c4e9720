"""`descent fit --by COL`: the formula fitted to every group of rows sharing a value of
COL, all groups at once (fitting/many.py's fit_many, one vectorised Levenberg-Marquardt),
with one run folder: config.json, groups.csv (a row per group), summary.json, and
plots/groups.png (a sample of the groups).

Labels are read as text (names or numbers, in the file's order of first appearance)
and become integer codes; groups may have any number of rows. A group that cannot be
fitted (fewer rows than free parameters, a start where the formula is not finite) is
reported as failed, with its reason, and the others are fitted. --by takes --sigma,
--absolute-sigma and --fix; options it cannot honour are refused before anything is
read (options.check_group_options). The fit runs on the device of the data tensors.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass

import torch
from rich.console import Console

from descent.commands.config import FitConfig, check_options
from descent.commands.fit import load_fit_data
from descent.commands.runs import (
    Finishing,
    check_outputs,
    start_run,
    with_absolute_paths,
    write_summary,
)
from descent.data.table_rows import read_text_column
from descent.errors import ConfigError, DataError
from descent.fitting.fixed import parse_fixed
from descent.fitting.many import ManyFits, fit_many
from descent.fitting.memory import retain_freed_memory
from descent.io.files import atomic_write_text
from descent.io.rundir import RunDir
from descent.models.formula import FormulaModel
from descent.report.fit_text import print_groups_summary
from descent.report.plots import plot_groups, save_figure
from descent.watch.session import WatchSession

SHOWN = 10  # groups printed in the summary table (failed ones are always shown)
PLOTTED = 12  # groups drawn in plots/groups.png


@dataclass
class GroupsCommandResult:
    """What `descent fit --by` did: the fits, their labels, the run folder, the summary."""

    fits: ManyFits
    labels: list[str]
    run_dir: RunDir
    summary: dict
    finish_signal: str | None = None  # a signal that came while the plots were drawn


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
    if watch is not None:
        raise ConfigError("--watch with --by is not built yet: watch one group's fit without --by")
    check_outputs(cfg, overwrite, resuming=False)
    cfg = with_absolute_paths(cfg)
    data = load_fit_data(cfg)
    formula = data.formula
    codes, labels = group_codes(cfg, data.dropped_rows, len(data.y))
    fixed = parse_fixed(cfg.fix, formula.params)
    check_group_sizes(cfg.by, codes, len(formula.params) - len(fixed))
    start = FormulaModel(formula, cfg.init).values()
    start.update(fixed)
    run, cfg = start_run(
        cfg, "fit", cfg.data, overwrite=overwrite,
        warn=lambda m: console.print(f"[yellow]warning:[/] {m}"),
    )  # fmt: skip
    try:
        return _fit_groups(cfg, run, data, codes, labels, fixed, start, console, say)
    finally:
        run.close()


def _fit_groups(cfg, run, data, codes, labels, fixed, start, console, say) -> GroupsCommandResult:
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
    t0 = time.perf_counter()
    fits = fit_many(
        formula,
        data.x,
        data.y,
        codes.to(data.y.device),
        [start[n] for n in formula.params],
        formula.params,
        fixed=fixed,
        sigma=data.sigma,
        absolute_sigma=cfg.absolute_sigma,
        max_steps=cfg.epochs,
    )
    seconds = time.perf_counter() - t0
    rows = fits.rows(labels)
    atomic_write_text(run.file("groups.csv"), groups_csv(rows, formula.params))
    counts = {k: fits.stopped.count(k) for k in dict.fromkeys(fits.stopped)}
    summary = {
        "formula": formula.text,
        "y": cfg.y,
        "inputs": formula.inputs,
        "by": cfg.by,
        "n": len(data.y),
        "n_groups": len(labels),
        "stopped": counts,
        "fixed": fixed,
        "sigma": cfg.sigma,
        "absolute_sigma": cfg.absolute_sigma,
        "seconds": seconds,
        "groups": rows,
        "run_dir": str(run),
    }
    write_summary(run, summary, cfg.json)
    print_groups_summary(console.print, rows, formula.params, SHOWN)
    say(f"  {len(labels)} groups fitted in {seconds:.3f} s")
    say(f"  run: {run}/ {run.listing()}")

    def drawings() -> list:  # after the numbers, cut short by a signal
        if not cfg.plots:
            return []
        fig = plot_groups(_panels(fits, labels, codes, data, formula), cfg.y, formula.text)
        return [save_figure(fig, run.plot("groups.png"))]

    with Finishing() as finishing:
        plots = finishing.draw(drawings)
    if made := run.plot_listing(plots):
        say(f"  plots: {run.plots}/ {made}")
    if finishing.signal is not None:
        console.print(finishing.note())
    return GroupsCommandResult(fits, labels, run, summary, finishing.signal)


def groups_csv(rows: list[dict], names: list[str]) -> str:
    """groups.csv: group, each parameter, its standard error, rss, n, stopped, reason."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["group", *names, *(f"{n}_stderr" for n in names), "rss", "n", "stopped", "reason"]
    )
    for r in rows:
        values = [r["params"][n] for n in names] + [r["stderr"][n] for n in names]
        writer.writerow(
            [r["group"], *(_cell(v) for v in values), _cell(r["rss"]), r["n"], r["stopped"],
             r.get("reason", "")]
        )  # fmt: skip
    return out.getvalue()


def _cell(v: float) -> str:
    return repr(v) if v == v and abs(v) != float("inf") else ""


def _panels(fits: ManyFits, labels, codes, data, formula) -> list[dict]:
    """Up to PLOTTED groups, evenly spread (failed ones included): data and curve."""
    n = len(labels)
    chosen = (
        range(n)
        if n <= PLOTTED
        else sorted({round(i * (n - 1) / (PLOTTED - 1)) for i in range(PLOTTED)})
    )
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
