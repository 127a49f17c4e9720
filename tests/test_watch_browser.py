"""The live page and report.html in real headless Chromium (Debian's `chromium`, driven
by the pinned `playwright` with executable_path; scripts/install_browser.sh installs it).

Skipped with a message where Chromium or playwright is missing; failed instead when the
environment variable CI is set. Screenshots go to tests/artifacts/ (ignored by git).
"""

import math
import os
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import torch
from rich.console import Console

from descent.report.events import weight_images
from descent.report.html import write_report
from descent.watch.callback import StopRequest, WatchFeed
from descent.watch.log import EventLog
from descent.watch.server import WatchServer

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).parent / "artifacts"
LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}


def _need_browser() -> None:
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the Python package playwright (pip install -e '.[test]')")
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"{CHROMIUM} (scripts/install_browser.sh)")
    if missing:
        message = "browser tests need " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message + "; CI is set, so this is a failure, not a skip")
        pytest.skip(message)


@pytest.fixture(scope="module")
def browser():
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    """A page whose every request is routed: anything not on loopback (or file://) is
    aborted and recorded, and so is every console error; both must stay empty."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.foreign, page.errors = [], []

    def route(r):
        url = r.request.url
        parts = urlsplit(url)
        local = parts.scheme in ("http", "https") and parts.hostname in LOOPBACK
        if local or parts.scheme in ("file", "data"):
            r.continue_()
        else:
            page.foreign.append(url)
            r.abort()

    context.route("**/*", route)
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    yield page
    context.close()
    assert page.foreign == [], f"the page asked the network for {page.foreign}"
    assert page.errors == [], f"the page logged errors: {page.errors}"


def shot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def points(page, chart="loss-chart"):
    return int(page.eval_on_selector(f"#{chart}", "e => Number(e.dataset.points || 0)"))


def dataset(selector, key):
    """JS: a number from an element's data-* attribute (0 while absent)."""
    return f"Number(document.querySelector('{selector}').dataset.{key} || 0)"


LOSS_POINTS = dataset("#loss-chart", "points")


def until(page, js, timeout=30_000):
    """Wait for the expression `js` to be true on the page. (Polled from here: the page's
    Content-Security-Policy forbids the eval that page.wait_for_function would need.)"""
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(f"() => Boolean({js})"):
        assert time.monotonic() < deadline, f"timed out waiting for {js}"
        page.wait_for_timeout(50)


class Feeder(threading.Thread):
    """A fake training loop: a classifier run and a curve fit, an epoch every `pause` s."""

    def __init__(self, log, epochs=400, pause=0.05):
        super().__init__(daemon=True)
        self.log, self.epochs, self.pause, self.halt = log, epochs, pause, threading.Event()

    def run(self):
        log = self.log
        gen = torch.Generator().manual_seed(0)
        log.append({"type": "run", "run": "px", "title": "3 vs 7", "task": "classify",
                    "config": {"lr": 0.1, "batch_size": 256}, "epochs": self.epochs})  # fmt: skip
        log.append({"type": "run", "run": "fit", "title": "roller-coaster", "task": "fit",
                    "config": {"formula": "a*t**2 + b*t + c"}})  # fmt: skip
        ts = [t / 2 for t in range(40)]
        ys = [0.75 * t * t - 10 * t + 100 + 3 * math.sin(7 * t) for t in ts]
        log.append({"type": "data", "run": "fit", "x": ts, "y": ys})
        pattern = torch.randn(2, 784, generator=gen)
        for e in range(1, self.epochs + 1):
            if self.halt.is_set():
                return
            for k in range(1, 5):
                x = e - 1 + k / 4
                log.append({"type": "batch", "run": "px", "x": x, "step": 4 * e + k,
                            "loss": 0.7 / x**0.5, "lr": 0.1})  # fmt: skip
            record = {"epoch": e, "train_loss": 0.7 / e**0.5, "valid_loss": 0.8 / e**0.5,
                      "valid_accuracy": 1 - 0.3 / e, "time": 0.05}  # fmt: skip
            log.append({"type": "epoch", "run": "px", "record": record, "steps": 4 * e, "lr": 0.1})
            w = pattern * min(e / 20, 1) + torch.randn(2, 784, generator=gen) * 0.05
            images = weight_images(w, labels=["3", "7"])
            log.append({"type": "weights", "run": "px", "epoch": e, **images})
            a, b = 0.75 * (1 - math.exp(-e / 10)), -10 * (1 - math.exp(-e / 10))
            fitted = [a * t * t + b * t + 100 for t in ts]
            log.append({"type": "curve", "run": "fit", "epoch": e, "x": ts, "y": fitted})
            values = {"a": a, "b": b, "c": 100.0}
            log.append({"type": "params", "run": "fit", "epoch": e, "values": values})
            time.sleep(self.pause)


def test_the_live_page_follows_the_run_and_stop_reaches_the_loop(page):
    log = EventLog()
    stops = []
    feeder = Feeder(log)
    with WatchServer(log, request_stop=stops.append) as server:
        feeder.start()
        try:
            page.goto(server.url)
            until(page, f"{LOSS_POINTS} > 10")
            first = points(page)
            weights = page.eval_on_selector("#weights", "e => Number(e.dataset.version)")
            curve = page.eval_on_selector("#fit-chart", "e => Number(e.dataset.version)")
            until(page, f"{LOSS_POINTS} > {first + 20}")
            until(page, f"{dataset('#weights', 'version')} > {weights}")
            until(page, f"{dataset('#fit-chart', 'version')} > {curve}")
            assert page.locator("#weights canvas").count() == 2
            assert page.locator("#params td").first.text_content() == "a"
            assert page.locator("#epochs tbody tr").count() > 5
            assert "live" in page.locator("#status").text_content()
            shot(page, "live-page.png")
            # a reload replays the whole history, not just what comes next
            page.reload()
            until(page, f"{LOSS_POINTS} >= {first + 20}")
            assert stops == []
            page.click("#stop")
            until(page, "document.querySelector('#stop').disabled")
            deadline = time.monotonic() + 10
            while not stops and time.monotonic() < deadline:
                time.sleep(0.05)
            assert stops == ["stopped from the page"]
            until(page, "document.querySelector('#status').textContent.includes('stop requested')")
        finally:
            feeder.halt.set()
            feeder.join(10)


def test_a_real_training_run_is_stopped_from_the_page_with_a_checkpoint(page, tmp_path):
    from descent.cli.common import exit_status
    from descent.commands.config import TrainConfig
    from descent.commands.train import train_command
    from descent.io.checkpoints import list_checkpoints, load_checkpoint

    log = EventLog()
    stop = StopRequest()
    feed = WatchFeed(log, "3v7", title="3 vs 7", labels=["7"], batch_interval=0.05)
    feed.image_interval = 0.1
    cfg = TrainConfig(
        source="mnist-sample", classes=["3", "7"], epochs=100_000, patience=0, batch_size=64,
        checkpoint_every="0", quiet=True, out=str(tmp_path / "run"),
    )  # fmt: skip
    outcome = {}

    def train():
        try:
            outcome["result"] = train_command(cfg, Console(quiet=True), callbacks=[feed, stop])
        except BaseException as e:  # noqa: BLE001 - reported by the test below
            outcome["error"] = e

    trainer = threading.Thread(target=train, daemon=True)
    with WatchServer(log, request_stop=stop) as server:
        trainer.start()
        try:
            page.goto(server.url)
            until(page, f"{LOSS_POINTS} > 3", timeout=120_000)
            first = points(page)
            until(page, f"{LOSS_POINTS} > {first}")
            until(page, f"{dataset('#weights', 'version')} > 1")
            page.click("#stop")
            trainer.join(120)
        finally:
            stop()  # never leave a training thread behind
            trainer.join(120)
        until(page, "document.querySelector('#summary').dataset.stopped === 'interrupted'")
        shot(page, "live-page-stopped.png")
    assert "error" not in outcome, outcome.get("error")
    fit = outcome["result"].fit_result
    assert fit.stopped == "interrupted" and fit.message.startswith("stopped from the page")
    assert exit_status(fit) == 130
    state, _ = load_checkpoint(list_checkpoints(tmp_path / "run" / "checkpoints")[-1])
    assert state["stopped"] == "interrupted" and state["epochs_done"] < 100_000
    assert "stopped from the page" in page.locator("#summary").text_content()


def test_the_report_opens_from_file_with_no_network_request(page, tmp_path):
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([1, 2, 3], [3, 1, 2])
    png = io.BytesIO()
    fig.savefig(png, format="png")
    plt.close(fig)
    log = EventLog()
    feeder = Feeder(log, epochs=30, pause=0)
    feeder.run()  # all at once, in this thread
    log.append({"type": "end", "run": "px", "stopped": "early_stopping",
                "message": "valid_loss did not improve for 5 epochs", "epochs": 30, "steps": 120,
                "final": {"valid_accuracy": 0.99}})  # fmt: skip
    log.append({"type": "end", "run": "fit", "stopped": "converged", "message": "step < 1e-6",
                "epochs": 30, "final": {"a": 0.75}})  # fmt: skip
    path = write_report(tmp_path / "report.html", log.events(), plots={"loss.png": png.getvalue()})
    page.goto(path.as_uri())
    until(page, "document.body.dataset.ready === '1'")
    assert points(page) > 100 and page.locator("#weights canvas").count() == 2
    assert page.locator("#stop").is_hidden()
    summary = page.locator("#summary").text_content()
    assert "early_stopping" in summary and "valid_loss did not improve" in summary
    assert page.locator(".plots img").count() == 1
    assert page.eval_on_selector(".plots img", "i => i.naturalWidth") > 0
    shot(page, "report.png")


def test_a_page_of_another_origin_cannot_stop_the_run_even_knowing_the_token(browser):
    """A cross-site form (urlencoded, or text/plain shaped like JSON), a no-cors fetch and
    a JSON fetch (which needs a CORS preflight the server never grants) all fail."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    log = EventLog()
    stops = []
    with WatchServer(log, request_stop=stops.append) as server:
        target = f"http://127.0.0.1:{server.port}/api/stop"
        token = server.token
        evil = f"""<!doctype html><html><body>
<iframe name="sink1"></iframe><iframe name="sink2"></iframe>
<form id="f1" method="POST" action="{target}" target="sink1">
  <input name="token" value="{token}"></form>
<form id="f2" method="POST" action="{target}" target="sink2" enctype="text/plain">
  <input name='{{"token":"{token}","x":"' value='"}}'></form>
<script>
document.getElementById("f1").submit();
document.getElementById("f2").submit();
const body = JSON.stringify({{token: "{token}"}});
fetch("{target}", {{method: "POST", mode: "no-cors", body: body,
  headers: {{"Content-Type": "text/plain"}}}})
  .then(() => window.noCors = "sent", e => window.noCors = String(e));
fetch("{target}", {{method: "POST", body: body,
  headers: {{"Content-Type": "application/json"}}}})
  .then(r => window.json = "status " + r.status, e => window.json = "blocked: " + e);
</script></body></html>""".encode()

        class Evil(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(evil)))
                self.end_headers()
                self.wfile.write(evil)

            def log_message(self, *args):
                pass

        other = ThreadingHTTPServer(("127.0.0.1", 0), Evil)  # another port: another origin
        threading.Thread(target=other.serve_forever, daemon=True).start()
        context = browser.new_context()
        try:
            page = context.new_page()
            page.goto(f"http://localhost:{other.server_address[1]}/")
            until(page, "window.noCors && window.json")
            assert page.evaluate("() => window.json").startswith("blocked")  # no preflight grant
            deadline = time.monotonic() + 10
            while server.refused < 3 and time.monotonic() < deadline:  # both forms, no-cors
                time.sleep(0.05)
            assert server.refused >= 3
        finally:
            context.close()
            other.shutdown()
            other.server_close()
        assert stops == [] and server.stop_requests == 0


def test_overlaid_runs_and_a_sweep_in_one_report(page, tmp_path):
    from descent.report.html import events_from_run

    events = []
    for run, lr in (("a", 0.1), ("b", 0.01)):
        history = [
            {"epoch": e, "train_loss": 1 / (lr * 10 * e + 1), "valid_loss": 1.1 / (lr * 10 * e + 1)}
            for e in range(1, 21)
        ]
        data = {"run": run, "title": f"lr {lr}", "config": {"lr": lr}, "history": history}
        events += events_from_run({**data, "stopped": "max_epochs", "message": "ran 20 epochs"})
    lrs = [1e-3, 1e-2, 1e-1, 1.0]
    sweep = {"run": "s", "lrs": lrs, "monitor": "valid_loss"}
    events.append({"type": "run", "title": "sweep", "task": "sweep", **sweep})
    for e in range(1, 11):
        values = [1 / (1 + lr * 20 * e) if lr < 1 or e < 4 else None for lr in lrs]
        diverged = [None, None, None, 4 if e >= 4 else None]  # the largest rate, at epoch 4
        events.append(
            {"type": "sweep", "epoch": e, "values": values, "diverged": diverged, **sweep}
        )
    path = write_report(tmp_path / "report.html", events)
    page.goto(path.as_uri())
    until(page, "document.body.dataset.ready === '1'")
    # two runs, each with train and valid loss
    assert page.eval_on_selector("#loss-chart", "e => e.dataset.series") == "4"
    legend = page.locator("#loss-card .u-legend").text_content()
    assert "lr 0.1 train_loss" in legend and "lr 0.01 valid_loss" in legend
    assert page.eval_on_selector("#sweep-chart", "e => e.dataset.series") == "4"  # a curve per rate
    assert page.locator("#epochs th.text").text_content() == "run"
    shot(page, "report-overlay.png")


def test_descent_train_watch_is_stopped_from_the_page_and_resume_finishes_it(page, tmp_path):
    """The real command in its own process: `descent train --watch` prints the address,
    the page follows it, Stop ends it with exit 130 and a checkpoint, and `descent
    resume` carries it on (here to two epochs more) and finishes."""
    import json
    import queue
    import subprocess
    import sys

    from descent.io.checkpoints import list_checkpoints, load_checkpoint

    run = tmp_path / "run"
    command = [sys.executable, "-m", "descent", "train", "mnist-sample", "--classes", "3,7",
               "--epochs", "100000", "--patience", "0", "--batch-size", "64", "--out", str(run),
               "--watch", "--quiet"]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    output = []
    try:
        deadline = time.monotonic() + 120
        url = None
        while url is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            output.append(line)
            if line.startswith("watch: "):
                url = line.split()[1]
        assert url, f"no address printed: {output}"
        page.goto(url)
        until(page, f"{LOSS_POINTS} > 3", timeout=120_000)
        first = points(page)
        until(page, f"{LOSS_POINTS} > {first}")
        until(page, f"{dataset('#weights', 'version')} > 1")
        shot(page, "live-train.png")
        page.click("#stop")
        rc = proc.wait(timeout=120)
        until(page, "document.querySelector('#summary').dataset.stopped === 'interrupted'")
        shot(page, "live-train-stopped.png")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert rc == 130, output
    state, _ = load_checkpoint(list_checkpoints(run / "checkpoints")[-1])
    assert state["stopped"] == "interrupted"
    assert state["stop_message"].startswith("stopped from the page")
    done = state["epochs_done"]
    more = subprocess.run(
        [sys.executable, "-m", "descent", "resume", str(run), "--epochs", str(done + 2), "-q"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert more.returncode == 0, more.stdout + more.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stopped"] == "max_epochs" and summary["epochs"] == done + 2
