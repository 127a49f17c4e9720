"""Callbacks that connect the training loop to the live page.

    log = EventLog()
    stop = StopRequest()
    learn.fit(10, callbacks=[WatchFeed(log, run="3-vs-7", config=cfg), stop])
    # the server calls stop("stopped from the page") from its own thread

`WatchFeed` appends to the EventLog what the page draws, and keeps the loop cheap:

- every epoch: the learner's record (already synced once per epoch by the loop), the
  step count and the learning rate;
- within epochs, at most every `batch_interval` seconds: the mean training loss of the
  batches since the last point. Per batch it only reads the clock; the losses (which
  the learner keeps, detached, for the epoch's record) are stacked and synced at the
  interval, never per batch;
- at most every `image_interval` seconds (and when the fit ends): the per-class weight
  images (`model.class_weights()`, (k, n_pixels)), the fitted curve on `grid` and the
  parameter values (`model.values()`), whichever the model has.

`SweepFeed` does the same for lr_sweep, which has no callbacks: pass it as `on_epoch`.
`StopRequest` is the page's Stop: a flag set from the server's thread and checked at
the next training batch boundary, where it ends the fit as Ctrl-C does (InterruptHandler).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from descent.core.events import Callback, CancelFit
from descent.report.events import floats, subsample, weight_images
from descent.watch import PAGE_REASON
from descent.watch.log import EventLog

MAX_DATA_POINTS = 5_000  # data points of a curve fit sent to the page (evenly subsampled)


class WatchFeed(Callback):
    """Feeds the live page: epoch records, rate-limited batch losses and lr, and
    weight images, fitted curves and parameter values at a bounded rate.

    Args:
        log: the EventLog the page reads.
        run: the run's id on the page (one page can overlay several runs).
        title: shown above the charts (default: the run id).
        config: JSON-able settings of the run, shown on the page and in the report.
        batch_interval: seconds between loss points within an epoch (0: every batch).
        image_interval: seconds between weight images / curves / parameter values.
        grid: model inputs at which to draw the fitted curve (a curve fit).
        grid_x: the x value of each grid point (default: `grid` flattened).
        data: (x, y) the points the curve is fitted to, drawn once.
        labels: a name per weight image (class names), image_shape: (h, w) of one image
            (default: square).
    """

    order = 55  # after the stop rules and displays; the epoch records they cut short
    # are caught up from the history in after_fit

    def __init__(
        self,
        log: EventLog,
        run: str = "run",
        *,
        title: str | None = None,
        config: Mapping[str, Any] | None = None,
        batch_interval: float = 0.5,
        image_interval: float = 1.0,
        grid: torch.Tensor | None = None,
        grid_x: Sequence[float] | None = None,
        data: tuple[Sequence[float], Sequence[float]] | None = None,
        labels: Sequence[str] | None = None,
        image_shape: tuple[int, int] | None = None,
    ) -> None:
        self.log, self.run = log, run
        self.title = title or run
        self.config = dict(config or {})
        self.batch_interval, self.image_interval = batch_interval, image_interval
        self.grid = grid
        self.grid_x = floats(grid_x if grid_x is not None else grid) if grid is not None else None
        self.data = data
        self.labels = list(labels) if labels is not None else None
        self.image_shape = image_shape

    # -- events ---------------------------------------------------------------------------
    def before_fit(self) -> None:
        learn = self.learner
        model = learn.model
        self._sent = 0  # history records sent (a resumed run sends its past first)
        # The learner keeps the epoch's detached batch losses (learn.train_losses); a point
        # is the mean of those from index _mark on. Keeping our own references to
        # learn.loss would keep each batch's autograd graph alive until the point.
        self._mark = len(learn.train_losses)
        self._n_batches = max(len(learn.train_batches), 1)
        now = time.perf_counter()
        self._next_point = now + self.batch_interval
        self._next_image = now  # the first picture at the first check
        self.log.append(
            {
                "type": "run",
                "run": self.run,
                "title": self.title,
                "task": _task(model),
                "config": self.config,
                "model": repr(model),
                "epochs": learn.n_epochs,
                "batches_per_epoch": self._n_batches,
                "optimizer": type(learn.opt).__name__,
                "loss": getattr(learn.loss_func, "__name__", type(learn.loss_func).__name__),
            }
        )
        if self.data is not None:
            x, y = subsample(floats(self.data[0]), floats(self.data[1]), MAX_DATA_POINTS)
            self.log.append({"type": "data", "run": self.run, "x": x, "y": y})
        self._send_records()

    def after_batch(self) -> None:
        learn = self.learner
        if not learn.training:
            return
        now = time.perf_counter()
        if now >= self._next_point:
            self._next_point = now + self.batch_interval
            self._send_point()
            if now >= self._next_image:
                self._send_pictures()

    def after_epoch(self) -> None:
        self._mark = 0  # the epoch's record has the mean of its losses; a new list begins
        self._send_records()
        if time.perf_counter() >= self._next_image:
            self._send_pictures()

    def after_fit(self) -> None:
        learn = self.learner
        self._send_records()
        self._send_pictures()
        final = dict(learn.history[-1]) if len(learn.history) else {}
        values = getattr(learn.model, "values", None)
        if callable(values):
            final.update({f"param {k}": v for k, v in values().items()})
        self.log.append(
            {
                "type": "end",
                "run": self.run,
                "stopped": learn.stopped,
                "message": learn.stop_message,
                "epochs": len(learn.history),
                "steps": learn.steps,
                "final": final,
            }
        )

    # -- what is sent ------------------------------------------------------------------------
    def _lr(self) -> float:
        return float(self.learner.opt.param_groups[0]["lr"])

    def _send_records(self) -> None:
        learn = self.learner
        rows = learn.history.rows
        for rec in rows[self._sent :]:
            self.log.append(
                {
                    "type": "epoch",
                    "run": self.run,
                    "record": dict(rec),
                    "steps": learn.steps,
                    "lr": self._lr(),
                }
            )
        self._sent = len(rows)

    def _send_point(self) -> None:
        learn = self.learner
        pending = learn.train_losses[self._mark :]  # (detached) batch losses since the last
        if not pending:
            return
        self._mark = len(learn.train_losses)
        with torch.no_grad():  # one sync per interval, for all the batches since the last
            loss = float(torch.stack([t.reshape(()) for t in pending]).mean())
        self.log.append(
            {
                "type": "batch",
                "run": self.run,
                "x": learn.epoch + learn.batches_done / self._n_batches,
                "step": learn.steps,
                "loss": loss,
                "lr": self._lr(),
            }
        )

    def _send_pictures(self) -> None:
        self._next_image = time.perf_counter() + self.image_interval
        learn = self.learner
        model = learn.model
        epoch = learn.epoch + learn.batches_done / self._n_batches
        with torch.no_grad():
            if callable(getattr(model, "class_weights", None)):
                self.log.append(
                    {
                        "type": "weights",
                        "run": self.run,
                        "epoch": epoch,
                        **weight_images(model.class_weights(), self.image_shape, self.labels),
                    }
                )
            if self.grid is not None:
                y = model(self.grid).reshape(-1).double().cpu().tolist()
                self.log.append(
                    {"type": "curve", "run": self.run, "epoch": epoch, "x": self.grid_x, "y": y}
                )
            values = getattr(model, "values", None)
            if callable(values):
                self.log.append(
                    {"type": "params", "run": self.run, "epoch": epoch, "values": values()}
                )


class SweepFeed:
    """Feeds the page from `lr_sweep(..., on_epoch=feed)`: one curve per rate.

    feed = SweepFeed(log, run="sweep", config=cfg)
    result = lr_sweep(model, train, valid, lrs=lrs, epochs=5, on_epoch=feed)
    feed.end(result)
    """

    def __init__(
        self,
        log: EventLog,
        run: str = "sweep",
        *,
        title: str | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self.log, self.run = log, run
        self.title, self.config = title or run, dict(config or {})
        self._started = False

    def __call__(self, epoch: int, result: Any) -> None:
        if not self._started:
            self._started = True
            self.log.append(
                {
                    "type": "run",
                    "run": self.run,
                    "title": self.title,
                    "task": "sweep",
                    "config": self.config,
                    "lrs": list(result.lrs),
                    "monitor": result.monitor,
                }
            )
        values = [h[-1][result.monitor] if len(h) == epoch else None for h in result.histories]
        self.log.append(
            {
                "type": "sweep",
                "run": self.run,
                "epoch": epoch,
                "lrs": list(result.lrs),
                "monitor": result.monitor,
                "values": values,
                "diverged": list(result.diverged),
            }
        )

    def end(self, result: Any, stopped: str = "max_epochs", message: str = "") -> None:
        """The sweep is over: its best rate, and why it stopped."""
        best = result.best_index
        final = {"best lr": None if best is None else result.lrs[best]}
        if best is not None:
            final[f"best {result.monitor}"] = result.best_loss[best]
        self.log.append(
            {
                "type": "end",
                "run": self.run,
                "stopped": stopped,
                "message": message
                or ("every rate diverged" if best is None else f"best lr {result.lrs[best]:.3g}"),
                "epochs": max((len(h) for h in result.histories), default=0),
                "final": final,
            }
        )


class StopRequest(Callback):
    """Stop from the page: finish the training batch in progress (or the epoch,
    during validation), then end the fit as Ctrl-C does, with the reason given.

    Calling the object (from any thread, e.g. the server's) requests the stop; the
    result says "interrupted" and its message "stopped from the page at epoch E,
    batch B", so the CLI exits 130, the Checkpointer writes a checkpoint at that
    batch boundary, and `descent resume` continues the run.
    """

    order = 80  # with InterruptHandler: after the stop rules and displays of an epoch

    def __init__(self) -> None:
        self.reason: str | None = None

    def __call__(self, reason: str = PAGE_REASON) -> None:
        self.reason = reason  # one attribute store: safe from another thread

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def after_batch(self) -> None:
        # Training batches only: a request during validation stops after the epoch.
        if self.reason is not None and self.learner.training:
            self._stop(f"at epoch {self.learner.epoch + 1}, batch {self.learner.batches_done}")

    def after_epoch(self) -> None:
        if self.reason is not None:
            self._stop(f"after epoch {self.learner.record['epoch']}")

    def _stop(self, where: str) -> None:
        reason, self.reason = self.reason, None  # consumed: a later fit runs
        raise CancelFit("interrupted", f"{reason} {where}")


def _task(model: torch.nn.Module) -> str:
    if callable(getattr(model, "class_weights", None)):
        return "classify"
    if callable(getattr(model, "values", None)):
        return "fit"
    return "train"
