"""The live page's machinery without a browser: the event log, the callbacks that feed
it from a real Learner, the page's Stop as a clean interrupt (resumed bit for bit), and
report.html."""

import base64
import json
import math
import re
import threading

import pytest
import torch
from rich.console import Console

from descent.core.events import Callback
from descent.core.learner import Learner
from descent.data.batches import Batches
from descent.data.synthetic import quadratic
from descent.models.function import FunctionModel
from descent.models.pixels import PixelClassifier
from descent.report.events import encode, weight_images
from descent.report.html import events_from_run, render_report, write_report
from descent.watch.callback import StopRequest, SweepFeed, WatchFeed
from descent.watch.log import EventLog

QUIET = Console(quiet=True)


# -- the log ---------------------------------------------------------------------------
def test_log_appends_in_order_and_replays_from_any_index():
    log = EventLog()
    for i in range(5):
        assert log.append({"type": "epoch", "run": "a", "record": {"epoch": i + 1}}) == i
    assert [i for i, _ in log.since(0)] == [0, 1, 2, 3, 4]
    assert [e["record"]["epoch"] for _, e in log.since(3)] == [4, 5]
    assert log.since(5) == [] and log.wait(5, timeout=0.01) == []
    assert all("t" in e for e in log.events())


def test_log_keeps_only_the_newest_picture_of_each_run():
    log = EventLog()
    log.append({"type": "weights", "run": "a", "data": "old"})
    log.append({"type": "weights", "run": "b", "data": "other run"})
    log.append({"type": "epoch", "run": "a", "record": {"epoch": 1}})
    log.append({"type": "weights", "run": "a", "data": "new"})
    kinds = [(e["type"], e["run"], e.get("data")) for e in log.events()]
    assert kinds == [
        ("weights", "b", "other run"),
        ("epoch", "a", None),
        ("weights", "a", "new"),
    ]
    texts, following = log.encoded_since(0)
    assert [i for i, _ in texts] == [1, 2, 3] and following == 4


def test_a_reader_follows_a_writer_thread_and_misses_nothing():
    log = EventLog()
    n = 2000

    def write():
        for i in range(n):
            log.append({"type": "batch", "run": "a", "x": i})
        log.close()

    seen, index = [], 0
    writer = threading.Thread(target=write)
    writer.start()
    while True:
        got = log.wait(index, timeout=5)
        if not got and log.closed and index >= len(log):
            break
        for i, event in got:
            seen.append(event["x"])
            index = i + 1
    writer.join()
    assert seen == list(range(n))


def test_encoding_turns_non_finite_numbers_into_null():
    text = encode({"type": "epoch", "record": {"train_loss": math.nan, "valid_loss": math.inf}})
    assert json.loads(text) == {"type": "epoch", "record": {"train_loss": None, "valid_loss": None}}


def test_weight_images_round_trip_within_one_step_of_127():
    w = torch.randn(3, 784, generator=torch.Generator().manual_seed(0))  # (k, 784)
    msg = weight_images(w, labels=["a", "b", "c"])
    assert msg["shape"] == [3, 28, 28] and msg["labels"] == ["a", "b", "c"]
    q = torch.frombuffer(bytearray(base64.b64decode(msg["data"])), dtype=torch.int8)
    back = q.view(3, 784).float() / 127 * torch.tensor(msg["scale"])[:, None]
    assert torch.allclose(back, w, atol=float(w.abs().max()) / 127)


# -- the feed, from a real Learner ---------------------------------------------------------
def pixel_learner(n=256, epochs_of_batches=8, seed=0, **kw):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 8, 8), generator=gen, dtype=torch.uint8)
    y = (x[:, :4].float().mean((1, 2)) > x[:, 4:].float().mean((1, 2))).float()[:, None]
    model = PixelClassifier(n_pixels=64, n_outputs=1)
    train = Batches(x[:192], y[:192], 192 // epochs_of_batches, seed=seed)
    valid = Batches(x[192:], y[192:])
    return Learner(
        model, train, valid, loss="bce", lr=0.5, metrics=["accuracy"], progress=False, **kw
    )


def of(log, kind):
    return [e for e in log.events() if e["type"] == kind]


def test_feed_sends_header_every_epoch_batch_points_weights_and_the_end():
    log = EventLog()
    learn = pixel_learner()
    feed = WatchFeed(
        log, "px", config={"lr": 0.5}, batch_interval=0, image_interval=0, labels=["no", "yes"]
    )
    result = learn.fit(3, callbacks=[feed])
    (run,) = of(log, "run")
    assert run["task"] == "classify" and run["config"] == {"lr": 0.5} and run["epochs"] == 3
    records = [e["record"] for e in of(log, "epoch")]
    assert records == learn.history.rows and all(e["lr"] == 0.5 for e in of(log, "epoch"))
    points = of(log, "batch")
    assert len(points) == 3 * 8  # batch_interval 0: a point per training batch
    assert [p["step"] for p in points] == list(range(1, 25))
    assert points[-1]["x"] == pytest.approx(3.0)
    (weights,) = of(log, "weights")  # the newest only
    assert weights["shape"] == [1, 8, 8] and weights["labels"] == ["no"]
    (end,) = of(log, "end")
    assert end["stopped"] == result.stopped == "max_epochs" and end["epochs"] == 3
    assert end["final"]["valid_accuracy"] == learn.history[-1]["valid_accuracy"]


def test_batch_points_are_means_of_the_batches_since_the_last_point():
    log = EventLog()
    learn = pixel_learner()
    learn.fit(1, callbacks=[WatchFeed(log, batch_interval=1e9)])  # no point within the epoch
    assert of(log, "batch") == []
    # every batch: each point is that batch's loss
    log, learn = EventLog(), pixel_learner()

    class Losses(Callback):
        def after_batch(self):
            if self.learner.training:
                seen.append(float(self.learner.loss.detach()))

    seen = []
    learn.fit(1, callbacks=[WatchFeed(log, batch_interval=0), Losses()])
    assert [p["loss"] for p in of(log, "batch")] == pytest.approx(seen)


def test_a_stop_rule_cutting_an_epoch_short_still_sends_its_record():
    class StopAfter2(Callback):
        order = 20  # a stop rule: before the feed (55), it ends after_epoch early

        def after_epoch(self):
            if len(self.learner.history) == 2:
                from descent.core.events import CancelFit

                raise CancelFit("early_stopping", "enough")

    log = EventLog()
    learn = pixel_learner()
    learn.fit(5, callbacks=[WatchFeed(log), StopAfter2()])
    assert [e["record"]["epoch"] for e in of(log, "epoch")] == [1, 2]
    assert of(log, "end")[0]["stopped"] == "early_stopping"


def test_a_curve_fit_sends_data_curve_and_parameter_values(roller):
    t, speed = roller
    log = EventLog()
    model = FunctionModel(quadratic, "abc", [0.1, 0.2, 0.3])
    learn = Learner(model, Batches(t, speed), lr=1e-5, progress=False)
    grid = torch.linspace(float(t.min()), float(t.max()), 50, dtype=t.dtype)
    feed = WatchFeed(log, "roller", grid=grid, data=(t, speed), image_interval=0)
    learn.fit(4, callbacks=[feed])
    (data,) = of(log, "data")
    assert data["x"] == t.tolist() and data["y"] == speed.tolist()
    (curve,) = of(log, "curve")
    assert curve["x"] == pytest.approx(grid.tolist())
    assert curve["y"] == pytest.approx(model(grid).detach().tolist())
    (params,) = of(log, "params")
    assert params["values"] == model.values()
    assert of(log, "run")[0]["task"] == "fit"
    assert of(log, "end")[0]["final"]["param a"] == model.values()["a"]


def test_a_resumed_learner_replays_its_past_epochs_first():
    learn = pixel_learner()
    learn.fit(2)
    log = EventLog()
    learn.fit(4, callbacks=[WatchFeed(log)])
    assert [e["record"]["epoch"] for e in of(log, "epoch")] == [1, 2, 3, 4]


def test_sweep_feed_sends_one_value_per_rate_per_epoch():
    from descent.tuning.sweep import lr_sweep

    learn = pixel_learner()
    log = EventLog()
    feed = SweepFeed(log, "sweep", config={"lrs": "0.01:1:3"})
    result = lr_sweep(
        learn.model, learn.train_batches, learn.valid_batches, loss="bce",
        lrs=[0.01, 0.1, 1.0], epochs=3, on_epoch=feed,
    )  # fmt: skip
    feed.end(result)
    (run,) = of(log, "run")
    assert run["task"] == "sweep" and run["lrs"] == [0.01, 0.1, 1.0]
    sweeps = of(log, "sweep")
    assert [s["epoch"] for s in sweeps] == [1, 2, 3]
    assert sweeps[-1]["values"] == [h[-1]["valid_loss"] for h in result.histories]
    assert of(log, "end")[0]["final"]["best lr"] == result.best_lr


# -- Stop from the page ---------------------------------------------------------------------
def test_stop_from_another_thread_ends_the_fit_at_a_batch_boundary():
    learn = pixel_learner()
    stop = StopRequest()
    started = threading.Event()

    class Started(Callback):
        def after_epoch(self):
            started.set()

    threading.Thread(target=lambda: (started.wait(60), stop()), daemon=True).start()
    result = learn.fit(100_000, callbacks=[Started(), stop])
    assert result.stopped == "interrupted" and result.signal is None
    assert result.message.startswith("stopped from the page ")
    assert len(learn.history) < 100_000 and not stop.requested  # consumed


def test_stop_then_resume_equals_one_uninterrupted_run(tmp_path):
    from descent.callbacks.checkpointer import Checkpointer
    from descent.cli.common import exit_status
    from descent.io.checkpoints import list_checkpoints, load_checkpoint

    whole = pixel_learner()
    whole.fit(3)

    stop = StopRequest()

    class PressStop(Callback):  # the page's button, at epoch 2, batch 3
        order = 0

        def after_batch(self):
            if self.learner.training and (self.learner.epoch, self.learner.batches_done) == (1, 3):
                stop()

    first = pixel_learner()
    result = first.fit(3, callbacks=[PressStop(), stop, Checkpointer(tmp_path)])
    assert result.stopped == "interrupted"
    assert result.message == "stopped from the page at epoch 2, batch 3"
    assert exit_status(result) == 130
    state, _ = load_checkpoint(list_checkpoints(tmp_path)[-1])
    assert (state["epochs_done"], state["batches_done"], state["stopped"]) == (1, 3, "interrupted")

    again = pixel_learner()
    again.load_state_dict(state)
    assert again.fit(3).stopped == "max_epochs"
    assert torch.equal(again.model.weights, whole.model.weights)
    assert [{k: v for k, v in r.items() if k != "time"} for r in again.history] == [
        {k: v for k, v in r.items() if k != "time"} for r in whole.history
    ]


def test_stop_during_validation_waits_for_the_end_of_the_epoch():
    stop = StopRequest()

    class PressDuringValidation(Callback):
        def after_batch(self):
            if not self.learner.training and self.learner.epoch == 0:
                stop()

    learn = pixel_learner()
    result = learn.fit(5, callbacks=[PressDuringValidation(), stop])
    assert result.message == "stopped from the page after epoch 1" and len(learn.history) == 1


# -- report.html ----------------------------------------------------------------------
def test_report_is_one_file_that_requests_nothing(tmp_path):
    history = [{"epoch": e, "train_loss": 1 / e, "valid_loss": math.nan} for e in (1, 2)]
    data = {
        "run": "r",
        "config": {"note": "</script><script>alert(1)</script>"},
        "history": history,
        "stopped": "early_stopping",
        "message": "no improvement in 2 epochs",
        "params": {"a": 1.5},
        "weights": torch.ones(2, 784),
    }
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
    path = write_report(tmp_path / "run" / "report.html", data, plots={"loss <1>": png})
    text = path.read_text()
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]  # no temporary left
    # nothing is fetched: no src/href to anything but inline data, and a CSP that forbids it
    assert not re.search(r'(src|href)="(?!data:)', text)
    assert "default-src 'none'" in text and "url(" not in text
    assert "<script>alert(1)" not in text  # data cannot close its <script> and open another
    embedded = re.search(r'<script [^>]*id="descent-events">(.*?)</script>', text, re.S)
    events = json.loads(embedded.group(1))
    assert [e["type"] for e in events] == ["run", "epoch", "epoch", "params", "weights", "end"]
    assert events[1]["record"]["valid_loss"] is None and events[0]["config"] == data["config"]
    assert "data:image/png;base64," in text and "loss &lt;1&gt;" in text


def test_report_refuses_a_plot_it_cannot_embed(tmp_path):
    from descent.errors import ConfigError

    with pytest.raises(ConfigError, match="neither PNG nor SVG"):
        render_report([], plots={"x": b"GIF89a"})


def test_events_from_run_match_what_the_feed_sends_for_the_same_history():
    log = EventLog()
    learn = pixel_learner()
    learn.fit(2, callbacks=[WatchFeed(log, "px")])
    run = {"run": "px", "history": learn.history.rows, "stopped": learn.stopped}
    rebuilt = events_from_run({**run, "message": learn.stop_message})
    records = [e["record"] for e in rebuilt if e["type"] == "epoch"]
    assert records == [e["record"] for e in of(log, "epoch")]
    assert rebuilt[-1]["stopped"] == of(log, "end")[0]["stopped"]


def test_the_feed_reads_the_device_a_fixed_number_of_times_however_many_batches(monkeypatch):
    """No sync per batch: with the intervals long, the reads of tensor values the feed
    adds (.item, float(), .tolist, .cpu, .numpy) do not grow with the number of batches."""
    calls = []
    for name in ("item", "tolist", "cpu", "numpy", "__float__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *a, _original=original, **k):
            calls.append(1)
            return _original(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counted)

    def reads(batches_per_epoch, watched):
        learn = pixel_learner(epochs_of_batches=batches_per_epoch)
        feed = [WatchFeed(EventLog(), batch_interval=1e9, image_interval=1e9)] if watched else []
        calls.clear()
        learn.fit(3, callbacks=feed)
        return len(calls)

    added = [reads(n, True) - reads(n, False) for n in (4, 16, 64)]
    assert added[0] == added[1] == added[2] <= 6  # the first and the last picture, 3 each
