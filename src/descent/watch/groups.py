"""The live page of `descent fit --by`: fit_many's `on_step` hook, feeding the log.

    feed = GroupsFeed(log, run, names=..., labels=..., samples=[...], curve=f, stop=stop)
    fits = fit_many(..., on_step=feed)          # the loop calls feed(progress) per step
    feed.end(fits.rows(labels), stopped, message)

fit_many calls the feed once per iteration; the feed reads the clock and returns,
except 0.2 s after the start and then at most every `interval` seconds, when it asks
for the groups' current values (one sync) and appends to the EventLog:

    batch    x (the step), step, loss (sum of the groups' rss / rows: the loss chart)
    groups   step, names, counts {stopped: n}, n_groups, rows (the first ROWS groups:
             group, params, rss, stopped), samples (a few groups: group, curve x and y)
    group_data  samples (group, x, y): the sampled groups' points, sent once, before
                the first picture (the samples are made then: a short fit skips them)

Appending is the log's lock and a list append: the loop never waits on the network.
`stop` (the page's StopRequest) and `interrupted` (a signal handler's flag) are
checked at every call: either ends the fit through CancelFit, which fit_many turns
into "interrupted" groups at their current values.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from descent.core.events import CancelFit, StopReason
from descent.report.events import floats
from descent.watch.callback import StopRequest
from descent.watch.log import EventLog

ROWS = 20  # groups listed in the page's table (groups.csv has them all)
FIRST = 0.2  # seconds before the first picture (the page redraws at most every 0.25 s)


@dataclass
class GroupSample:
    """One group drawn on the page: its label, its points and where to draw its curve
    (`grid`: model inputs; `grid_x`: their x on the chart)."""

    index: int
    label: str
    x: torch.Tensor
    y: torch.Tensor
    grid: torch.Tensor
    grid_x: torch.Tensor


class GroupsFeed:
    """fit_many's on_step for the live page (see the module's docstring).

    Args:
        log: the EventLog the page reads; run: the run's id on the page.
        names: the parameters; labels: the groups' labels (in code order).
        samples: the groups whose curves are drawn, or a function giving them, called
            at the first picture (a fit shorter than FIRST seconds never pays for them);
            curve(grid, params (p,)) -> y.
        stop: the page's StopRequest; interrupted() -> a signal's name, or None.
        n_rows: the rows fitted (the loss is sum(rss) / n_rows).
        interval: seconds between pictures of the groups.
    """

    def __init__(
        self,
        log: EventLog,
        run: str,
        *,
        names: Sequence[str],
        labels: Sequence[str],
        samples: Sequence[GroupSample] | Callable[[], Sequence[GroupSample]] = (),
        curve: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        stop: StopRequest | None = None,
        interrupted: Callable[[], str | None] = lambda: None,
        n_rows: int = 1,
        title: str | None = None,
        config: Mapping[str, Any] | None = None,
        interval: float = 1.0,
    ) -> None:
        self.log, self.run, self.names, self.labels = log, run, list(names), list(labels)
        self._samples, self.samples, self.curve = samples, None, curve
        self.stop, self.interrupted = stop, interrupted
        self.n_rows, self.interval = max(n_rows, 1), interval
        self.steps = 0
        # The first picture after FIRST seconds: a fit shorter than that costs the page
        # nothing but the clock reads (its end() picture shows the result).
        self._next = time.perf_counter() + min(FIRST, interval)
        log.append(
            {
                "type": "run",
                "run": run,
                "title": title or run,
                "task": "groups",
                "config": dict(config or {}),
                "names": self.names,
                "n_groups": len(self.labels),
            }
        )

    def _sample_groups(self) -> list[GroupSample]:
        """The sampled groups, made and their points sent (group_data) the first time."""
        if self.samples is None:
            given = self._samples
            self.samples = list(given() if callable(given) else given)
            if self.samples:
                points = [{"group": s.label, "x": floats(s.x), "y": floats(s.y)}
                          for s in self.samples]  # fmt: skip
                self.log.append({"type": "group_data", "run": self.run, "samples": points})
        return self.samples

    def __call__(self, progress: Any) -> None:
        """Once per fit_many iteration: the stop checks, and a picture when due."""
        self.steps = progress.step
        signal_name = self.interrupted()
        if signal_name is not None:
            raise CancelFit(
                StopReason.INTERRUPTED, f"interrupted by {signal_name} at step {progress.step}"
            )
        if self.stop is not None and self.stop.reason is not None:
            reason, self.stop.reason = self.stop.reason, None
            raise CancelFit(StopReason.INTERRUPTED, f"{reason} at step {progress.step}")
        now = time.perf_counter()
        if now >= self._next:
            self._next = now + self.interval
            self.picture(progress.step, progress.params(), progress.rss(), progress.stopped())

    def picture(
        self,
        step: int,
        params: torch.Tensor,
        rss: torch.Tensor,
        stopped: Sequence[str],
        at_bound: Sequence[dict] | None = None,
    ) -> None:
        """The groups now: the loss point, the table's rows and the sampled curves
        (`at_bound`: per group, the parameters on a bound, at the end)."""
        samples = self._sample_groups()
        total = float(torch.nansum(rss))
        self.log.append(
            {"type": "batch", "run": self.run, "x": step, "step": step, "loss": total / self.n_rows}
        )
        counts: dict[str, int] = {}
        for s in stopped:
            counts[s] = counts.get(s, 0) + 1
        head = params[:ROWS].double().cpu().tolist()
        rss_head = rss[:ROWS].double().cpu().tolist()
        rows = [
            {
                "group": self.labels[g],
                "params": dict(zip(self.names, head[g], strict=True)),
                "rss": rss_head[g],
                "stopped": stopped[g],
            }
            | ({"at_bound": at_bound[g]} if at_bound and at_bound[g] else {})
            for g in range(len(head))
        ]
        self.log.append(
            {
                "type": "groups",
                "run": self.run,
                "step": step,
                "names": self.names,
                "n_groups": len(self.labels),
                "counts": counts,
                "rows": rows,
                "samples": self._curves(params, samples),
            }
        )

    def _curves(self, params: torch.Tensor, samples: list[GroupSample]) -> list[dict]:
        if self.curve is None:
            return []
        out = []
        with torch.no_grad():
            for s in samples:
                b = params[s.index]
                if not bool(torch.isfinite(b).all()):
                    continue  # a failed group: its points only
                y = self.curve(s.grid, b).reshape(-1)
                out.append({"group": s.label, "x": floats(s.grid_x), "y": floats(y)})
        return out

    def end(self, rows: Sequence[dict], stopped: str, message: str, final: dict) -> None:
        """The fit is over: the last picture from the results, then the end event."""
        params = torch.tensor(
            [[_num(r["params"][n]) for n in self.names] for r in rows], dtype=torch.float64
        ).reshape(len(rows), len(self.names))
        rss = torch.tensor([_num(r["rss"]) for r in rows], dtype=torch.float64)
        stopped_as = [r["stopped"] for r in rows]
        self.picture(self.steps, params, rss, stopped_as, [r.get("at_bound") for r in rows])
        self.log.append(
            {
                "type": "end",
                "run": self.run,
                "stopped": stopped,
                "message": message,
                "epochs": self.steps,
                "steps": self.steps,
                "final": final,
            }
        )


def _num(v: float | None) -> float:
    return math.nan if v is None else float(v)
